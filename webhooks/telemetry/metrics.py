"""What smshooks counts for Prometheus, recorded where it happens; `metrics_view` serves it at /metrics.

Two kinds of process count, usually on different machines:

- web (gunicorn workers): callbacks by outcome and events stored, in prometheus_client
  counters. Under gunicorn they are in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set
  by gunicorn_conf), so a scrape answered by any gunicorn worker sums them all.
- worker (`smshooks worker`, another dyno): handler job outcomes, callback-to-handled
  latency and provider API calls, added to Redis hashes that the web side reads when it
  is scraped. A handled job's counts go in the round trip that marks it handled
  (`count_success`), a failed one's in a pipelined round trip of their own.

prometheus_client is imported only when a web counter is first used, never at import
time: it picks single- or multiprocess mode once, when it is first imported, and
`gunicorn -c python:webhooks.cli.gunicorn_conf` imports this package before that file
gets to set PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
import time
import traceback
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from flask import Response, current_app, g, request
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import get_current_job

from webhooks.config import DEFAULT_REDIS_URL, cert_reqs_setting
from webhooks.redis_connection import redis_client

from . import live, refusals
from .redaction import scrub_text, secrets_from_env

log = logging.getLogger(__name__)
# One line per handler batch: handler, events, outcome, duration (webhooks/telemetry/logs.py).
batch_log = logging.getLogger("webhooks.handler_jobs")

# Redis hashes written by workers (and anything calling api_call); fields are JSON label lists.
HANDLER_JOBS = "smshooks:metrics:handler_jobs"  # [handler, outcome] -> jobs
HANDLER_EVENTS = "smshooks:metrics:handler_events"  # [handler, outcome] -> events in those jobs
LATENCY = "smshooks:metrics:latency"  # [handler, le] -> events (per bucket, not cumulative); [handler, "sum"]
API_CALLS = "smshooks:metrics:api_calls"  # [provider, endpoint, outcome] -> calls

# Seconds from callback to handled. Retries back off up to RETRY_INTERVALS' 1800 s, hence the long tail.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, float("inf"))


def field(*labels: str) -> str:
    """A hash field naming one series: its label values as a JSON list (any character is safe)."""
    return json.dumps(labels)


# --------------------------------------------------------------------------- web side


@functools.cache
def web_counters() -> tuple[Any, Any]:
    """The web side's prometheus_client counters, made on first use (see the module docstring)."""
    from prometheus_client import Counter

    callbacks = Counter(
        "smshooks_callbacks",
        "Provider callbacks answered, by outcome and HTTP status",
        ["provider", "outcome", "code"],
        registry=None,
    )
    events = Counter(
        "smshooks_events",
        "Events stored by callbacks (duplicates not counted)",
        ["provider", "kind", "status"],
        registry=None,
    )
    return callbacks, events


@functools.cache
def _child(index: int, labels: tuple[str, ...]) -> Any:
    # `.labels()` takes a lock and builds a key on every call; a callback pays one dict lookup instead.
    return web_counters()[index].labels(*labels)


def _outcome(code: int) -> str:
    if code == 200:
        return "accepted" if g.get("smshooks_accepted") else "duplicate"
    if code == 503:
        return "unavailable"
    return "rejected" if code < 500 else "error"


def counted_as(provider: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorate a provider's view: one count per callback, by provider, outcome and HTTP status."""

    def decorate(handle: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handle)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            g.smshooks_provider = provider  # store_and_answer counts the callback in the store's own call
            try:
                response = handle(*args, **kwargs)
            except BaseException:
                _child(0, (provider, "error", "500")).inc()
                _observe(provider, None)
                raise
            _child(0, (provider, _outcome(response.status_code), str(response.status_code))).inc()
            _observe(provider, response)
            return response

        return wrapper

    return decorate


def _observe(provider: str | None, response: Response | None) -> None:
    """The console's live count (unless the store's call made it) and the refused log; never raises."""
    try:
        redis = current_app.extensions["smshooks.get_redis"]()
        status = 500 if response is None else response.status_code
        if provider is not None:
            if g.get("smshooks_live_counted"):
                live.flush(redis)  # counts an outage kept in this process, once Redis answers again
            else:
                live.count(redis, provider, live.outcome_of(status, bool(g.get("smshooks_accepted"))))
        if response is not None and status in refusals.LOGGED:
            body = refusals.body_head(request, g.get("smshooks_body"))
            secrets = current_app.config["SECRETS"]  # every configured secret, read once by create_app
            refusals.record(redis, refusals.entry(request, response, secrets, body))
    except Exception:  # noqa: BLE001 (counting must never change the answer)
        log.warning("could not record the live count or refusal", exc_info=True)


def refusals_logged(view: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a view that is not a callback (the read API): its 4xx refusals go to the refused log."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        response = view(*args, **kwargs)
        _observe(None, response)
        return response

    return wrapper


def events_stored(events: Sequence[Any], stored: Sequence[bool]) -> None:
    """Count the events a callback stored (new ones only), by provider, kind and status."""
    for event, new in zip(events, stored, strict=True):
        if new:
            _child(1, (event.provider, event.kind.value, event.status.value)).inc()
    g.smshooks_accepted = any(stored)


# --------------------------------------------------------------------------- worker side


def _latency_fields(events: Sequence[dict[str, Any]], now: datetime) -> tuple[Tally, float]:
    buckets: Tally = Tally()
    total = 0.0
    for event in events:
        try:
            seconds = max((now - datetime.fromisoformat(event["received_at"])).total_seconds(), 0.0)
        except (KeyError, TypeError, ValueError):
            continue  # not an event we can time; handling it still counts
        total += seconds  # clamped at 0: web and worker clocks (other machines) may disagree a little
        buckets[LATENCY_BUCKETS[bisect.bisect_left(LATENCY_BUCKETS, seconds)]] += 1
    return buckets, total


def _worker_secrets() -> tuple[str, ...]:
    # Read at each failure, not cached: failures are rare, and the environment is the truth.
    return secrets_from_env(os.environ)


def _error_text(err: BaseException) -> str:
    """The exception's last line, scrubbed (secrets, credentials, phone numbers), for the console."""
    text = traceback.format_exception_only(type(err), err)[-1].strip()
    return scrub_text(text, _worker_secrets())[:500]


def _job_counts(
    pipe: Pipeline, handler: str, events: Sequence[dict[str, Any]], outcome: str, err: BaseException | None = None
) -> None:
    if err is not None:
        live.record_error(pipe, handler, outcome, _error_text(err))
    pipe.hincrby(HANDLER_JOBS, field(handler, outcome), 1)
    pipe.hincrby(HANDLER_EVENTS, field(handler, outcome), len(events))
    if outcome == "success":
        buckets, total = _latency_fields(events, datetime.now(timezone.utc))
        for le, count in buckets.items():
            pipe.hincrby(LATENCY, field(handler, repr(le)), count)
        pipe.hincrbyfloat(LATENCY, field(handler, "sum"), total)


def count_success(pipe: Pipeline, handler: str, events: Sequence[dict[str, Any]]) -> None:
    """A handler job's success and latency, on `pipe`: jobs.handle sends them with the job's handled mark."""
    _job_counts(pipe, handler, events, "success")


def _record_job(handler: str, events: Sequence[dict[str, Any]], outcome: str, err: BaseException) -> None:
    job = get_current_job()
    if job is None:
        return  # called outside RQ (a direct call in a script): nowhere to count
    try:
        with job.connection.pipeline(transaction=False) as pipe:
            _job_counts(pipe, handler, events, outcome, err)
            pipe.execute()
    except RedisError as exc:
        # Never let counting turn a failed job into one failed for another reason.
        log.warning("could not record %s metrics for %s: %s", outcome, handler, type(exc).__name__)


@functools.cache
def _kept_out_of_sentry() -> None:
    # The RQ integration reports a job's final failure once; the batch line must not make it twice.
    from sentry_sdk.integrations.logging import ignore_logger

    ignore_logger(batch_log.name)


def _log_batch(handler: str, events: Sequence[Any], outcome: str, seconds: float, failed: bool) -> None:
    """The batch's one line; a failure's carries its traceback (webhooks/telemetry/logs.py folds it)."""
    if outcome == "success":
        level = logging.INFO
    else:
        _kept_out_of_sentry()
        level = logging.WARNING if outcome == "retry" else logging.ERROR
    job = get_current_job()
    batch_log.log(
        level,
        "handler=%s events=%d outcome=%s duration_ms=%.1f job=%s",
        handler,
        len(events),
        outcome,
        seconds * 1000,
        job.id if job is not None else "-",
        exc_info=failed,
    )


def counted_handler_job(job_function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate jobs.handle(handler_name, events): retry or final failure, one log line.

    A success and its latency are counted by the job itself (`count_success`), in the round trip
    that marks it handled (pipeline/handled.py), not in one more of their own.
    """

    @functools.wraps(job_function)
    def wrapper(handler_name: str, events: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = job_function(handler_name, events, *args, **kwargs)
        except BaseException as err:
            seconds = time.perf_counter() - started
            job = get_current_job()
            # RQ decides after this raises: with retries left it retries, otherwise the job fails for good.
            outcome = "retry" if job is not None and job.should_retry else "failure"
            _record_job(handler_name, events, outcome, err)
            _log_batch(handler_name, events, outcome, seconds, failed=True)
            raise
        if result:  # 0: a re-run of a job already handled (pipeline/handled.py) did nothing; it says so itself
            _log_batch(handler_name, events, "success", time.perf_counter() - started, failed=False)
        return result

    return wrapper


@functools.cache
def _redis_from_env() -> Redis:
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    return redis_client(url, cert_reqs_setting(os.environ), socket_connect_timeout=2, socket_timeout=5)


def api_call(provider: str, endpoint: str, outcome: str, connection: Redis | None = None) -> None:
    """Count one call to a provider's API, from any process; never raises.

    `outcome` is a short word such as "ok", "http_4xx", "http_5xx", "timeout" or "error".
    Redis is `connection`, else the current RQ job's, else REDIS_URL's.
    """
    if connection is None:
        job = get_current_job()
        connection = job.connection if job is not None else _redis_from_env()
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hincrby(API_CALLS, field(provider, endpoint, outcome), 1)
            live.count_api_call(pipe, provider, endpoint, outcome)  # the console's calls in the last hour
            pipe.execute()
    except RedisError as err:
        log.warning("could not count a %s API call: %s", provider, type(err).__name__)
