"""RQ job functions, imported by name by the worker (never defined in __main__)."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import sentry_sdk
from redis import Redis
from redis.client import Pipeline
from rq import get_current_job
from rq.job import Job

from handlers.base import DestinationGone, Handler, PartlyHandled, RetryLater
from handlers.mail import EmailHandler
from handlers.policy import Policy
from handlers.registry import build_each, env_name, handler_of, lanes
from webhooks.config import ConfigError, Settings
from webhooks.events import load_events
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.providers.status_maps import read_status_maps
from webhooks.telemetry import metrics
from webhooks.telemetry.redaction import secrets_from_env

from . import gone, handled, ordering
from .failures import delivered, reason_of, send_fallback
from .handled import mark_handled
from .queueing import dispatch_inbox, queue_for

log = logging.getLogger(__name__)


class Runtime:
    """What a worker builds once and reuses for every job: settings and handlers."""

    def __init__(
        self,
        settings: Settings,
        handlers: dict[str, Handler],
        policies: dict[str, Policy] | None = None,
        broken: dict[str, str] | None = None,
        fallback: EmailHandler | None = None,
        secrets: tuple[str, ...] = (),
        digitaleo: DigitaleoConfig | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self.policies = policies or {}
        self.broken = broken or {}  # handler name -> why it could not be built
        self.fallback = fallback
        # Every configured secret (telemetry/redaction.py's secrets_from_env), kept out of fallback emails.
        self.secrets = secrets or settings.webhook_secrets
        self.digitaleo = digitaleo or DigitaleoConfig()  # the Digitaleo sync's API credentials and mode

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Runtime:
        """Build every handler that can be built; the others are reported in `broken`, by name."""
        env = dict(os.environ if env is None else env)
        settings = Settings.from_env(env)
        read_status_maps(env)  # a bad <PROVIDER>_STATUS_MAP stops the worker too, as it stops the web
        built, broken = build_each(settings.handlers, env)
        handlers: dict[str, Handler] = {}
        policies = {}
        for name in settings.handlers:
            handler = built.get(name)
            destinations = lanes(name, handler) if handler is not None else {name: None}
            try:
                policies[name] = Policy.from_env(
                    env_name(name),
                    env,
                    settings.retry_intervals,
                    getattr(handler, "max_batch", None),
                    lanes=tuple(destinations) if len(destinations) > 1 else (),
                    ordered=getattr(handler, "ordered", False),
                )
            except ConfigError as err:
                broken[name] = f"handler {name!r} cannot start: {err}"
                for lane in destinations.values():
                    if lane is not None:
                        lane.close()
                continue
            handlers.update({lane: h for lane, h in destinations.items() if h is not None})
        fallback = None
        if env.get("FALLBACK_EMAIL_TO"):
            try:
                fallback = EmailHandler.from_env(env, to_key="FALLBACK_EMAIL_TO")
            except ValueError as err:
                broken["fallback"] = f"the fallback email cannot start: {err}"
        return cls(
            settings,
            handlers,
            policies,
            broken,
            fallback,
            secrets_from_env(env, settings.webhook_secrets),
            DigitaleoConfig.from_env(env),
        )

    def close(self) -> None:
        for handler in self.handlers.values():
            handler.close()

    def policy_for(self, job_name: str) -> Policy | None:
        """The policy of the handler a job (of any of its lanes) belongs to."""
        return self.policies.get(job_name) or self.policies.get(handler_of(job_name))

    def broken_reason(self, job_name: str) -> str | None:
        """Why a handler (or one of its lanes, `name[2]`) could not start, if it could not."""
        return self.broken.get(job_name) or self.broken.get(handler_of(job_name))


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
    """Move the inbox into one job per handler; see webhooks.pipeline.queueing."""
    job = get_current_job()
    assert job is not None, "dispatch runs only as an RQ job"
    current = runtime()
    return dispatch_inbox(job.connection, queue_for(job.connection, job.origin), current.settings, current.policies)


@metrics.counted_handler_job  # retry / final failure for /metrics; a success is counted with the handled mark
def handle(handler_name: str, events: list[dict[str, Any]]) -> int:
    """Give a batch of events to one handler; raising makes RQ retry this job alone."""
    job = get_current_job()
    # One round trip before the handler, one after it (tests/pipeline/test_round_trips.py).
    ran_before, gone_mark = _count_attempt(job, handler_name) if job is not None else (False, None)
    current = runtime()
    handler = current.handlers.get(handler_name)
    if handler is None:
        raise LookupError(
            current.broken_reason(handler_name) or f"handler {handler_name!r} is not enabled in this worker's HANDLERS"
        )
    # The current scope is the one the RQ integration opens per job: the tag names the failing handler.
    sentry_sdk.get_current_scope().set_tag("handler", handler_name)
    if job is None:  # called directly (tests, tools): no retries, marks or order to keep
        handler.handle_batch(load_events(events))
        return len(events)
    if ran_before:
        log.info("%s: job %s ran to the end before; not handling its events again", handler_name, job.id)
        _release_order(current, handler_name, events, job, job.connection)
        return 0
    why_gone = gone.reason_in(gone_mark, handler.destination)
    if why_gone:
        job.retries_left = 0  # the failed registry keeps it for `smshooks replay`
        raise gone.StillGone(f"not sent: {handler.destination} is gone: {why_gone}")
    done = delivered(job)
    try:
        try:
            handler.handle_batch(load_events(events[done:]))
        except PartlyHandled as partly:
            # Retries and replays start after what the destination took (failures.py reads it too).
            job.meta["delivered"] = done + partly.done
            job.save_meta()
            raise partly.cause from None
    except RetryLater as exc:
        _not_before(job, exc.seconds)
        raise
    except DestinationGone as exc:
        job.retries_left = 0
        gone.mark(job.connection, handler_name, handler.destination, str(exc))
        log.error("%s: %s; nothing more is sent to it until `smshooks replay`", handler_name, exc)
        raise

    def along(pipe: Pipeline) -> None:
        metrics.count_success(pipe, handler_name, events)
        _release_order(current, handler_name, events, job, pipe)

    # See pipeline/handled.py: RQ may run a finished job again.
    mark_handled(job.connection, job.id, wait=current.settings.job_timeout, along=along)
    return len(events)


def _count_attempt(job: Job, handler_name: str) -> tuple[bool, bytes | None]:
    """Count this attempt, and read the job's handled mark and its lane's gone mark, in one round trip.

    The attempts are for `smshooks failed` and the fallback email (pipeline/failures.py). Returns
    whether the job ran to the end before, and the gone mark as read (gone.reason_in).
    """
    job.meta["attempts"] = int(job.meta.get("attempts", 0)) + 1
    with job.connection.pipeline(transaction=False) as pipe:
        pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))  # job.save_meta(), in this round trip
        pipe.exists(handled.key(job.id))
        pipe.get(gone.key(handler_name))
        _, ran_before, gone_mark = pipe.execute()
    return bool(ran_before), gone_mark


MAX_RETRY_AFTER = 3600  # seconds; a longer Retry-After is taken as an hour


def _not_before(job: Any, seconds: float) -> None:
    """Make RQ's next retry of this job wait at least `seconds` (a 429's or 503's Retry-After)."""
    if not job.should_retry:
        return
    intervals = list(job.retry_intervals or [0])
    index = max(len(intervals) - job.retries_left, 0)  # the one RQ's Job.get_retry_interval picks
    # RQ keeps a scheduled time in whole seconds, cut down: one more second so it never comes early.
    intervals[index] = max(intervals[index], math.ceil(min(seconds, MAX_RETRY_AFTER)) + 1)
    job.retry_intervals = intervals


def _release_order(current: Runtime, handler_name: str, events: list[dict[str, Any]], job: Any, redis: Redis) -> None:
    policy = current.policy_for(handler_name)
    if policy is not None and policy.ordered:
        ordering.release(redis, handler_name, events, job.id)


def digitaleo_sync() -> int:
    """Read from the Digitaleo API what the pings announced, and store it; see providers/digitaleo/sync.py."""
    from webhooks.providers.digitaleo import sync  # imported here: only Digitaleo users need requests loaded

    job = get_current_job()
    assert job is not None, "digitaleo_sync runs only as an RQ job"
    current = runtime()
    return sync.run(job.connection, queue_for(job.connection, job.origin), current.settings, current.digitaleo)


def handler_failed(job: Any, connection: Any, exc_type: Any, exc_value: Any, _traceback: Any) -> None:
    """RQ failure callback of handler jobs: after the last retry, the events go to the fallback email."""
    if job.should_retry:  # RQ's own test (metrics.counted_handler_job uses it too): it retries the job
        return  # the fallback is for events that will not be delivered
    current = runtime()
    _release_order(current, job.args[0], job.args[1], job, job.connection)
    if exc_type is not None and issubclass(exc_type, gone.StillGone):
        # Its destination's 410 was mailed once, by the job that met it; this one waits for a replay.
        log.warning("handler job %s not sent (%s); it waits in the failed registry", job.id, exc_value)
        return
    # Every configured secret, not only WEBHOOK_SECRET: a Slack error may quote SLACK_WEBHOOK_URL.
    send_fallback(current.fallback, job, reason_of(exc_type, exc_value), current.secrets)
