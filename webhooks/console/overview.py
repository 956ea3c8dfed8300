"""The console's Overview: the last hour's callbacks, events, the inbox, handlers, Digitaleo's API, health.

Everything but the database's health comes from Redis (telemetry/live.py and the workers'
`smshooks:metrics:*` hashes): a few pipelined reads, whatever the size of `sms_events`.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text

from webhooks.pipeline.queueing import INBOX, received_at
from webhooks.redis_connection import describe
from webhooks.telemetry import live
from webhooks.telemetry.metrics import HANDLER_JOBS
from webhooks.telemetry.redaction import scrub_text, secrets_from_env
from webhooks.web.read_api import NoDatabase, get_reader
from webhooks.web.redis_store import get_redis

from . import bp
from .chart import charts
from .pages import render

DB_TIMEOUT = 1.0  # seconds the database's SELECT 1 may take before the page says it does not answer
# Digitaleo's document (2.9 Limitations): "not more than 10 status requests per SMS sent".
DIGITALEO_CALLS_PER_SMS = 10
# The endpoints DigitaleoClient counts its calls under (providers/digitaleo/api.py, `_send`).
STATUS_ENDPOINTS, TOKEN_ENDPOINT = ("status", "smsstatus"), "token"
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-db-health")


@bp.route("/")
def overview() -> Any:
    return render("console/overview.html", **figures())


def figures(now: float | None = None) -> dict[str, Any]:
    """Everything the page shows; a Redis that does not answer is said plainly, not a 500."""
    now = time.time() if now is None else now
    context: dict[str, Any] = {"now": _iso(now), "database": database_health()}
    try:
        context.update(_from_redis(get_redis(), now))
    except RedisError as err:
        context["redis_error"] = f"Redis cannot be reached ({describe(err)}): no figures until it answers"
    return context


def _from_redis(redis: Redis, now: float) -> dict[str, Any]:
    started = time.perf_counter()
    redis.ping()
    ping_ms = (time.perf_counter() - started) * 1000
    minutes = live.last_minutes(redis, 60, now)
    api_minutes = live.last_minutes(redis, 60, now, live.API_PREFIX)
    with redis.pipeline(transaction=False) as pipe:
        pipe.llen(INBOX)
        pipe.lindex(INBOX, 0)
        pipe.hgetall(HANDLER_JOBS)
        depth, oldest, jobs = pipe.execute()
    memory = redis.info("memory")
    hour = _summed(m["counts"] for m in minutes)
    return {
        "charts": charts(minutes),
        "callbacks": sorted((k[1], k[2], n) for k, n in hour.items() if k[0] == "callback"),
        "events": _events(hour, live.events_total(redis)),
        "inbox": {"depth": depth, "oldest_age": _age(oldest, now)},
        "handlers": _handlers(jobs, live.last_errors(redis)),
        "digitaleo": _digitaleo(_summed(m["counts"] for m in api_minutes), hour),
        "redis": {
            "ping_ms": round(ping_ms, 1),
            "used": memory.get("used_memory_human", "?"),
            "max": memory.get("maxmemory_human", "0B"),
            "policy": memory.get("maxmemory_policy", ""),
        },
    }


def _summed(hashes: Any) -> dict[tuple[str, ...], int]:
    total: dict[tuple[str, ...], int] = defaultdict(int)
    for counts in hashes:
        for key, n in counts.items():
            total[key] += n
    return dict(total)


def _events(hour: dict[tuple[str, ...], int], total: dict[tuple[str, ...], int]) -> list[tuple[Any, ...]]:
    """(kind, status, provider, last hour, since counting began) rows, by kind and status."""
    keys = {k for k in (*hour, *total) if k[0] == "event" and len(k) == 4}
    return sorted((k[2], k[3], k[1], hour.get(k, 0), total.get(k, 0)) for k in keys)


def _age(oldest: bytes | None, now: float) -> float | None:
    received = received_at(oldest)
    return None if received is None else max(now - received, 0.0)


def _handlers(jobs: dict[bytes, bytes], errors: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for raw, n in jobs.items():
        try:
            handler, outcome = json.loads(raw)
        except ValueError:
            continue
        rows.setdefault(handler, {"name": handler, "success": 0, "retry": 0, "failure": 0})[outcome] = int(n)
    secrets = _secrets()
    for handler, error in errors.items():
        row = rows.setdefault(handler, {"name": handler, "success": 0, "retry": 0, "failure": 0})
        # Scrubbed by the worker with its secrets; again here with the web's, which may know more.
        text = scrub_text(str(error.get("error", "")), secrets)
        row["last_error"] = {**error, "error": text, "at": _iso(error.get("at", 0))}
    return sorted(rows.values(), key=lambda r: r["name"])


def _secrets() -> tuple[str, ...]:
    settings = current_app.config["SETTINGS"]
    return secrets_from_env(os.environ, (*settings.webhook_secrets, *settings.api_tokens))


def _digitaleo(calls: dict[tuple[str, ...], int], hour: dict[tuple[str, ...], int]) -> dict[str, Any]:
    """Status requests (GET /status, /smsstatus) against the budget; OAuth token requests beside it, not in it."""
    sent = sum(n for k, n in hour.items() if k[0] == "event" and k[1] == "digitaleo" and k[3] == "queued")
    by_endpoint = sorted((k[1], k[2], n) for k, n in calls.items() if k[0] == "digitaleo")
    # Digitaleo's limit is on status requests (2.9); a token request checks nothing, so it is not in the budget.
    return {
        "calls": sum(n for endpoint, _, n in by_endpoint if endpoint in STATUS_ENDPOINTS),
        "tokens": sum(n for endpoint, _, n in by_endpoint if endpoint == TOKEN_ENDPOINT),
        "by_endpoint": by_endpoint,
        "sent": sent,
        "budget": DIGITALEO_CALLS_PER_SMS * sent if sent else None,
    }


def database_health() -> dict[str, Any]:
    """`SELECT 1` on the database handler's database, within DB_TIMEOUT; or that it is not enabled."""
    try:
        reader = get_reader()
    except NoDatabase:
        return {"state": "not enabled", "detail": "`database` is not in HANDLERS"}
    settings = current_app.config["SETTINGS"]

    def ping() -> float:
        started = time.perf_counter()
        with reader.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    backend = reader.engine.url.get_backend_name()
    try:
        ms = _pool.submit(ping).result(timeout=DB_TIMEOUT)
    except concurrent.futures.TimeoutError:
        return {"state": "no answer", "detail": f"{backend}: no answer within {DB_TIMEOUT:g} s", "bad": True}
    except Exception as err:  # noqa: BLE001 (whatever the driver raises, the page says it and goes on)
        detail = type(err).__name__
        if settings.database_url.startswith("sqlite"):
            detail += f": {str(err).splitlines()[0][:200]}"
        return {"state": "down", "detail": f"{backend}: {detail}", "bad": True}
    return {"state": "up", "detail": f"{backend}: SELECT 1 in {ms:.1f} ms"}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
