"""RQ job functions, imported by name by the worker (never defined in __main__)."""

from __future__ import annotations

import logging
import os
from typing import Any

import sentry_sdk
from rq import get_current_job

from handlers.base import Handler
from handlers.registry import build

from . import metrics
from .config import Settings
from .events import load_events
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


@metrics.counted_handler_job  # success / retry / final failure and latency, for /metrics
def handle(handler_name: str, events: list[dict[str, Any]]) -> int:
    """Give a batch of events to one handler; raising makes RQ retry this job alone."""
    handler = runtime().handlers.get(handler_name)
    if handler is None:
        raise LookupError(f"handler {handler_name!r} is not enabled in this worker's HANDLERS")
    # The current scope is the one the RQ integration opens per job: the tag names the failing handler.
    sentry_sdk.get_current_scope().set_tag("handler", handler_name)
    handler.handle_batch(load_events(events))
    log.info("%s handled %d event(s)", handler_name, len(events))
    return len(events)



def digitaleo_sync() -> int:
    """Read from the Digitaleo API what the pings announced, and store it; see webhooks.digitaleo_sync."""
    from . import digitaleo_sync as sync  # imported here: only Digitaleo users need requests loaded

    job = get_current_job()
    return sync.run(job.connection, queue_for(job.connection, job.origin), runtime().settings)
