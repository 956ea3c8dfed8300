"""RQ job functions, imported by name by the worker (never defined in __main__)."""

from __future__ import annotations

import logging
import os
from typing import Any

from rq import get_current_job

from handlers.base import Handler
from handlers.registry import build

from .config import Settings
from .events import load_events
from .handled import already_handled, mark_handled
from .queueing import dispatch_inbox, queue_for

log = logging.getLogger(__name__)


class Runtime:
    """What a worker builds once and reuses for every job: settings and handlers."""

    def __init__(self, settings: Settings, handlers: dict[str, Handler]) -> None:
        self.settings = settings
        self.handlers = handlers

    @classmethod
    def from_env(cls) -> Runtime:
        settings = Settings.from_env()
        return cls(settings, build(settings.handlers, os.environ))

    def close(self) -> None:
        for handler in self.handlers.values():
            handler.close()


_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Install the runtime the jobs use (the worker does this at start; tests too)."""
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_env()
    return _runtime


def dispatch() -> int:
    """Move the inbox into one job per handler; see webhooks.queueing."""
    job = get_current_job()
    return dispatch_inbox(job.connection, queue_for(job.connection, job.origin), runtime().settings)


def handle(handler_name: str, events: list[dict[str, Any]]) -> int:
    """Give a batch of events to one handler; raising makes RQ retry this job alone."""
    handler = runtime().handlers.get(handler_name)
    if handler is None:
        raise LookupError(f"handler {handler_name!r} is not enabled in this worker's HANDLERS")
    job = get_current_job()
    if job is not None and already_handled(job.connection, job.id):
        log.info("%s: job %s ran to the end before; not handling its events again", handler_name, job.id)
        return 0
    handler.handle_batch(load_events(events))
    if job is not None:  # see webhooks.handled: RQ may run a finished job again
        mark_handled(job.connection, job.id, wait=runtime().settings.job_timeout)
    log.info("%s handled %d event(s)", handler_name, len(events))
    return len(events)

