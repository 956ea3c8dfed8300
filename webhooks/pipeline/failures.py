"""Handler jobs that ran out of retries: the fallback email, and listing and replaying them.

The fallback runs as the job's RQ failure callback. RQ calls that callback on every
failed attempt, before it decides whether to retry, so it acts only when no retry is
left (`retries_left` is 0 or None): a retried job is never reported early.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Sequence
from typing import Any

from rq import Queue
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from handlers.mail import EmailHandler, one_line
from webhooks.events import load_events
from webhooks.telemetry.redaction import Secrets, scrub

from . import gone

log = logging.getLogger(__name__)

# Handler jobs by the name RQ stores; "webhooks.jobs.handle" is how releases before the move named it.
HANDLE_FUNCS = ("webhooks.pipeline.jobs.handle", "webhooks.jobs.handle")


class ReplayError(LookupError):
    """A job named for replay is not a failed handler job; the message says which."""


def reason_of(exc_type: Any, exc_value: Any) -> str:
    """The last line of the exception: `ConnectionError: flaky service is down`."""
    if exc_type is None:
        return "unknown error"
    return traceback.format_exception_only(exc_type, exc_value)[-1].strip()


def delivered(job: Job) -> int:
    """How many of a handler job's events its handler took before it failed (handlers.base.PartlyHandled)."""
    return int(job.meta.get("delivered", 0))


def pending(job: Job) -> list[dict[str, Any]]:
    """The events of a handler job not handled yet, in their wire form."""
    return list(job.args[1][delivered(job) :])


def fallback_message(fallback: EmailHandler, job: Job, reason: str, secret: Secrets) -> Any:
    """The mail saying which handler failed, why, and what it could not deliver."""
    handler, events = job.args[0], load_events(pending(job))
    attempts = job.meta.get("attempts", 1)
    lines = [
        f"The handler {handler!r} could not deliver {len(events)} event(s) after {attempts} attempt(s).",
        "",
        f"Reason: {reason}",
        "",
        f"Job: {job.id}",
        f"It stays in the failed-job registry: `smshooks replay {job.id}` delivers it again once the service is back.",
        "",
        "Events:",
    ]
    for e in events:
        who = e.sender if e.kind.value == "reply" else e.recipient
        text = f" text={e.text!r}" if e.text is not None else ""
        assert e.occurred_at is not None  # Event.__post_init__ defaults it to received_at
        lines.append(
            f"- {e.kind.value} {e.status.value} SMS {e.message_id} ({who or 'no number'}, "
            f"{e.provider}, {e.occurred_at.isoformat()}){text}"
        )
    body = scrub("\n".join(lines) + "\n", secret)
    return fallback.message(f"smshooks: {handler} failed for {len(events)} event(s): {scrub(reason, secret)}", body)


def send_fallback(fallback: EmailHandler | None, job: Job, reason: str, secret: Secrets) -> bool:
    """Mail the failed job's events; False (logged) when there is no fallback or it failed too."""
    if fallback is None:
        log.error("handler job %s failed for good (%s); no FALLBACK_EMAIL_TO configured", job.id, reason)
        return False
    try:
        fallback.smtp.send([fallback_message(fallback, job, reason, secret)])
    except Exception as exc:  # never replace the job's own reason with the fallback's
        log.error("fallback email for job %s failed: %s", job.id, reason_of(type(exc), exc))
        return False
    log.warning("handler job %s failed for good (%s); fallback email sent", job.id, reason)
    return True


@dataclasses.dataclass
class FailedJob:
    """A failed handler job, as `smshooks failed` shows it."""

    id: str
    handler: str
    event_ids: list[str]
    summary: str
    error: str
    attempts: int


def _describe(job: Job) -> FailedJob:
    events = pending(job)
    kinds: dict[str, int] = {}
    for e in events:
        key = f"{e['kind']} {e['status']}" if e["kind"] == "receipt" else e["kind"]
        kinds[key] = kinds.get(key, 0) + 1
    result = job.latest_result()
    error = (result.exc_string or "").strip().splitlines()[-1] if result and result.exc_string else "unknown"
    return FailedJob(
        id=job.id,
        handler=job.args[0],
        event_ids=[e["event_id"] for e in events],
        summary=", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
        error=one_line(error, 300),
        attempts=int(job.meta.get("attempts", 1)),
    )


def _failed_handler_jobs(queue: Queue) -> list[Job]:
    ids = queue.failed_job_registry.get_job_ids()
    return [
        j
        for j in Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer)
        if j is not None and j.func_name in HANDLE_FUNCS
    ]


def failed(queue: Queue, handler: str | None = None) -> list[FailedJob]:
    """Every failed handler job still in the registry (optionally of one handler)."""
    return [_describe(j) for j in _failed_handler_jobs(queue) if handler is None or j.args[0] == handler]


def replay(queue: Queue, job_ids: Sequence[str] = (), handler: str | None = None) -> list[str]:
    """Put failed handler jobs back on the queue with their retries renewed; the ids put back.

    With no ids, every failed handler job (of `handler`, if given). The registry entry is
    removed atomically (ZREM) before the job is queued, so two replays at once queue it once.
    """
    registry = queue.failed_job_registry
    if job_ids:
        jobs = []
        for job_id in job_ids:
            job = queue.fetch_job(job_id)
            if job is None or job.func_name not in HANDLE_FUNCS or job_id not in registry:
                raise ReplayError(f"no failed handler job {job_id!r}; `smshooks failed` lists them")
            jobs.append(job)
    else:
        jobs = _failed_handler_jobs(queue)
    jobs = [job for job in jobs if handler is None or job.args[0] == handler]
    # Replaying says the destinations are back: a lane marked gone (HTTP 410) is sent to again.
    gone.clear(queue.connection, sorted({job.args[0] for job in jobs}))
    replayed = []
    for job in jobs:
        job.retries_left = len(job.retry_intervals or [])  # a fresh round of backoff
        try:
            registry.requeue(job)
        except InvalidJobOperation:
            continue  # someone else replayed it meanwhile
        replayed.append(job.id)
    return replayed
