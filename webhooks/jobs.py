"""The job functions under the names earlier releases gave RQ, so their queued and failed jobs still run.

RQ stores a job's function by its dotted name. Jobs enqueued before the code moved into
rooms name `webhooks.jobs.handle` (and `.dispatch`, `.handler_failed`, `.digitaleo_sync`);
they can wait for a retry or sit in the failed registry for `smshooks replay` for weeks.
New jobs name `webhooks.pipeline.jobs.*`.
"""

from webhooks.pipeline.jobs import digitaleo_sync, dispatch, handle, handler_failed

__all__ = ["digitaleo_sync", "dispatch", "handle", "handler_failed"]
