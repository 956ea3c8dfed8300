"""The console's live figures, kept in Redis so that every web process shows the same numbers.

- `smshooks:live:<minute>` (a hash per minute, the Unix minute in the key, kept `KEEP` seconds):
  callbacks answered, field `["callback", provider, outcome]`, and events stored, field
  `["event", provider, kind, status]`. Outcomes: `accepted`, `duplicate`, `refused:<status>`
  (400, 401, 403, 413, 415, 429), `503` (Redis was down), `error` (a 500).
- `smshooks:live:events` (no expiry): events stored since counting began, the same fields.
- `smshooks:live:api_calls:<minute>`: provider API calls, field `[provider, endpoint, outcome]`.
- `smshooks:live:last_error` (hash): per handler, its last failed attempt `{"at", "outcome", "error"}`.

An accepted or duplicate callback is counted inside the store's own Lua call
(`pipeline/queueing.py`, `Ingest.store(events, callback=...)`): no second round trip. Everything
else makes its own write here. A count that cannot be written because Redis is down (a 503
above all) waits in this process and is added with the next write that reaches Redis.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "smshooks:live:"
EVENTS_TOTAL = "smshooks:live:events"
API_PREFIX = "smshooks:live:api_calls:"
LAST_ERROR = "smshooks:live:last_error"
KEEP = 2 * 3600  # seconds a minute's hash lives: the overview shows the last hour

_pending: Counter[tuple[str, str]] = Counter()  # (minute key, field) -> counts Redis did not take yet
_lock = threading.Lock()


def minute(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


def minute_key(now: float | None = None, prefix: str = PREFIX) -> str:
    return f"{prefix}{minute(now)}"


@functools.cache  # a callback pays a dict lookup, not a json.dumps
def callback_field(provider: str, outcome: str) -> str:
    return json.dumps(["callback", provider, outcome])


@functools.cache
def event_field(provider: str, kind: str, status: str) -> str:
    return json.dumps(["event", provider, kind, status])


class CallbackCount(NamedTuple):
    """What `Ingest.store` adds for the callback it stores: one of two fields, by whether any event was new."""

    accepted: str
    duplicate: str


@functools.cache
def callback_count(provider: str) -> CallbackCount:
    return CallbackCount(callback_field(provider, "accepted"), callback_field(provider, "duplicate"))


def outcome_of(status: int, accepted: bool) -> str:
    """A callback's outcome from its HTTP status (and, for a 200, whether it stored anything new)."""
    if status < 300:
        return "accepted" if accepted else "duplicate"
    if status == 503:
        return "503"
    return f"refused:{status}" if status < 500 else "error"


def count(redis: Redis | None, provider: str, outcome: str, now: float | None = None) -> None:
    """Count one callback answered outside the store's Lua call; never raises."""
    key, name = minute_key(now), callback_field(provider, outcome)
    if redis is None or outcome == "503":
        _defer([(key, name)])  # Redis is down: writing now would wait for its timeout, in the caller's request
        return
    _write(redis, [(key, name)])


def flush(redis: Redis) -> None:
    """Add what earlier writes could not; one round trip, only when something waits."""
    if _pending:
        _write(redis, [])


def _defer(items: Iterable[tuple[str, str]], counts: Counter[tuple[str, str]] | None = None) -> None:
    with _lock:
        for item in items:
            _pending[item] += counts[item] if counts else 1


def _write(redis: Redis, items: list[tuple[str, str]]) -> None:
    with _lock:
        todo = Counter(_pending)
        _pending.clear()
    todo.update(items)
    try:
        with redis.pipeline(transaction=False) as pipe:
            for (key, name), n in todo.items():
                pipe.hincrby(key, name, n)
                pipe.expire(key, KEEP)
            pipe.execute()
    except RedisError as err:
        log.debug("live counts kept for later: %s", type(err).__name__)
        _defer(todo, todo)


def pending() -> int:
    """How many counts wait for Redis in this process."""
    return sum(_pending.values())


def count_api_call(pipe: Any, provider: str, endpoint: str, outcome: str, now: float | None = None) -> None:
    """Add one provider API call to this minute's hash, on `pipe` (the caller's round trip)."""
    key = minute_key(now, API_PREFIX)
    pipe.hincrby(key, json.dumps([provider, endpoint, outcome]), 1)
    pipe.expire(key, KEEP)


def record_error(pipe: Any, handler: str, outcome: str, error: str, now: float | None = None) -> None:
    """Remember a handler's last failed attempt (`error` already scrubbed), on `pipe`."""
    at = time.time() if now is None else now
    pipe.hset(LAST_ERROR, handler, json.dumps({"at": at, "outcome": outcome, "error": error}))


# --------------------------------------------------------------------------- reading


def _decode(raw: dict[Any, Any]) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for name, value in raw.items():
        try:
            out[tuple(json.loads(name))] = int(value)
        except (TypeError, ValueError):
            continue  # a field this release does not write
    return out


def last_minutes(redis: Redis, minutes: int = 60, now: float | None = None, prefix: str = PREFIX) -> list[dict]:
    """The last `minutes` minutes' hashes, oldest first, each `{"minute": <unix minute>, "counts": {...}}`."""
    last = minute(now)
    wanted = list(range(last - minutes + 1, last + 1))
    with redis.pipeline(transaction=False) as pipe:
        for m in wanted:
            pipe.hgetall(f"{prefix}{m}")
        hashes = pipe.execute()
    return [{"minute": m, "counts": _decode(h)} for m, h in zip(wanted, hashes, strict=True)]


def events_total(redis: Redis) -> dict[tuple[str, ...], int]:
    return _decode(redis.hgetall(EVENTS_TOTAL))


def last_errors(redis: Redis) -> dict[str, dict[str, Any]]:
    out = {}
    for handler, raw in redis.hgetall(LAST_ERROR).items():
        try:
            out[handler.decode() if isinstance(handler, bytes) else handler] = json.loads(raw)
        except ValueError:
            continue
    return out
