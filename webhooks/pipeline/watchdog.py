"""The receipt watchdog's pass: messages still not final at their deadline become `receipt_overdue` events.

The dispatch arms the deadlines (`pipeline/deadlines.py`) and clears them in the transaction that
takes final statuses off the inbox, so a final status still waiting there has cleared nothing yet.
A pass therefore reads only what is due by `now` or by the receive time of the oldest event still
waiting (the inbox's head: events are appended as they arrive), whichever is earlier: ZRANGEBYSCORE
-inf cutoff LIMIT, the head read in the pass's first round trip. A backlogged worker delays the
alerts instead of raising false ones; events appended during the pass arrived after `now`.

A pass stores one `receipt_overdue` event per due message through `Ingest.store` (deduplicated,
dispatched to every handler whose `<NAME>_EVENTS` wants it, like any event), then removes exactly
the members it declared: compare-and-delete on the score, so a member re-armed meanwhile stays. A
pass killed between the store and the removal declares the same event id again (derived from
provider, message id and deadline), dropped as a duplicate.

Digitaleo is asked first: a due Digitaleo message not asked yet is handed to the sync
(`sync.ask_about`) and its deadline pushed by a grace period; still due at the next pass, it
is declared. One worker runs a pass at a time (`LOCK`); `watchdog_loop` is a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import cast

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from webhooks.config import Settings
from webhooks.events import Event, Kind, Status
from webhooks.providers.digitaleo import sync
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.redis_connection import redis_client

from .deadlines import ASKED, DEADLINES, FINAL, FINAL_KEPT, LAST, split_member, watching
from .queueing import INBOX, Ingest, queue_for, received_at

log = logging.getLogger("webhooks.watchdog")

LOCK = "smshooks:watchdog:lock"  # the one worker running a pass
LOCK_TIMEOUT = 300  # seconds a killed pass can hold the lock
DUE_BATCH = 1000  # members read, declared and removed per round of a pass
MAX_ROUNDS = 100  # rounds per pass: a huge backlog is declared over several passes
ASK_GRACE = 600  # seconds Digitaleo's API is given to answer (capped at the provider's deadline)

# KEYS: deadlines, last, asked. ARGV: (member, score) pairs. Removes a member only if its score is
# still the one the pass read: one re-armed (or pushed by an ask) meanwhile keeps its deadline.
_REMOVE = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('SREM', KEYS[3], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""

# KEYS: deadlines, asked. ARGV: the new deadline, then members. Pushes (and marks asked) only members
# still armed: one whose final status arrived meanwhile stays gone.
_PUSH = """
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i]) == 1 then
    redis.call('SADD', KEYS[2], ARGV[i])
  end
end
return 0
"""

_STATUSES = {s.value: s for s in Status}
Asker = Callable[[Sequence[str]], bool]  # SMS ids -> False when Digitaleo's API cannot be asked


def interval_for(settings: Settings) -> float:
    """Seconds between passes: a quarter of the shortest deadline, between 1 s and 60 s."""
    deadlines = [settings.receipt_deadline, *(s for _, s in settings.receipt_deadlines)]
    shortest = min((d for d in deadlines if d is not None), default=None)
    return 60.0 if shortest is None else max(1.0, min(60.0, shortest / 4))


def span(seconds: float) -> str:
    """`2 s`, `90 min`, `24 h`, `2 d`: how long, in the unit that reads best."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def overdue_event(member: str, deadline: float, last: str | None, now: float, seconds: int | None) -> Event:
    """The `receipt_overdue` event of one due message; its id is derived from the member and the deadline."""
    provider, message_id = split_member(member)
    status_word, _, at = (last or "unknown 0").partition(" ")
    status = _STATUSES.get(status_word, Status.UNKNOWN)
    last_at = float(at or 0) or None
    when = f"`{status.value}` at {_iso(last_at)}" if last_at else f"`{status.value}`"
    ago = f"{span(now - last_at)} ago" if last_at else "time unknown"
    digest = hashlib.sha256(json.dumps(["receipt_overdue", provider, message_id, repr(deadline)]).encode())
    return Event(
        provider=provider,
        kind=Kind.RECEIPT_OVERDUE,
        status=status,
        message_id=message_id,
        received_at=datetime.fromtimestamp(now, timezone.utc),
        occurred_at=datetime.fromtimestamp(deadline, timezone.utc),
        final=False,
        description=(f"no final status {span(seconds)} after {when}" if seconds else f"no final status after {when}"),
        raw={
            "last_status": status.value,
            "last_status_at": _iso(last_at) if last_at else None,
            "last_status_ago": ago,
            "last_status_age_seconds": round(now - last_at) if last_at else None,
            "deadline": _iso(deadline),
            "deadline_seconds": seconds,
        },
        event_id=f"{provider}-{digest.hexdigest()[:32]}",
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def due_by(now: float, oldest_waiting: float | None) -> float:
    """The latest deadline a pass may declare: `now`, or the receive time of the oldest event still in the inbox.

    A final status received before a deadline but still waiting for the dispatch (a backlogged
    worker) has not cleared that deadline yet: declaring it would be a false alert.
    """
    return now if oldest_waiting is None else min(now, oldest_waiting)


def run_pass(
    redis: Redis, ingest: Ingest, settings: Settings, ask: Asker | None = None, now: float | None = None
) -> int:
    """Declare every message due by `now` overdue (asking Digitaleo first); returns how many were declared.

    Held back by the inbox: a message whose deadline is later than the oldest waiting event's receive
    time waits until everything received before its deadline has been dispatched (`due_by`).
    """
    now = time.time() if now is None else now
    with redis.pipeline(transaction=False) as pipe:  # one round trip, as the trim alone was
        pipe.zremrangebyscore(FINAL, "-inf", now - FINAL_KEPT)
        pipe.lindex(INBOX, 0)
        _, head = pipe.execute()
    cutoff = due_by(now, received_at(head))
    remove, push = redis.register_script(_REMOVE), redis.register_script(_PUSH)
    declared = 0
    for _ in range(MAX_ROUNDS):
        read = cast(list[tuple[bytes, float]], redis.zrangebyscore(DEADLINES, "-inf", cutoff, 0, DUE_BATCH, True))
        due = [(_text(m), float(s)) for m, s in read]
        if not due:
            break
        members = [m for m, _ in due]
        seconds = {m: settings.deadline_for(split_member(m)[0]) for m in members}
        lasts = [None if v is None else _text(v) for v in redis.hmget(LAST, members)]
        digitaleo = [m for m in members if split_member(m)[0] == "digitaleo" and seconds[m] is not None]
        asked = dict(zip(digitaleo, redis.smismember(ASKED, digitaleo), strict=True)) if digitaleo else {}
        to_ask = [m for m in digitaleo if not asked[m]]
        skip: set[str] = set()
        if to_ask and ask is not None and ask([split_member(m)[1] for m in to_ask]):
            grace = min(ASK_GRACE, seconds[to_ask[0]] or ASK_GRACE)
            push(keys=[DEADLINES, ASKED], args=[round(now + grace, 3), *to_ask])
            skip = set(to_ask)  # declared at a later pass if still due; without the API, at once
        events = [
            overdue_event(m, s, last, now, seconds[m])
            for (m, s), last in zip(due, lasts, strict=True)
            if m not in skip and seconds[m] is not None
        ]
        for start in range(0, len(events), 500):
            ingest.store(events[start : start + 500])
        # Declared ones, and those of a provider no longer watched (dropped without an event).
        done = [x for m, s in due if m not in skip for x in (m, repr(s))]
        if done:
            remove(keys=[DEADLINES, LAST, ASKED], args=done)
        declared += len(events)
        if len(due) < DUE_BATCH:
            break
    return declared


def tick(redis: Redis, ingest: Ingest, settings: Settings, ask: Asker | None = None) -> int | None:
    """One pass under the lock; None when another worker holds it."""
    lock = redis.lock(LOCK, timeout=LOCK_TIMEOUT)
    if not lock.acquire(blocking=False):
        return None
    try:
        return run_pass(redis, ingest, settings, ask)
    finally:
        try:
            lock.release()
        except RedisError:
            pass  # it expired; the next pass takes it


def digitaleo_asker(redis: Redis, queue: Queue, config: DigitaleoConfig) -> Asker:
    """Digitaleo's `ask_about`, bound to this worker's connection and settings."""
    return lambda sms_ids: sync.ask_about(redis, queue, config, sms_ids)


def watchdog_loop(settings: Settings, config: DigitaleoConfig, stop: threading.Event) -> None:
    """A worker thread: a pass every `interval_for` seconds (the lock picks one worker)."""
    if not watching(settings):
        return
    redis = redis_client(settings.redis_url, settings.redis_ssl_cert_reqs, socket_connect_timeout=2, socket_timeout=5)
    queue = queue_for(redis, settings.queue_name)
    ingest = Ingest(redis, queue, settings.dedupe_window)
    ask = digitaleo_asker(redis, queue, config)
    while not stop.wait(interval_for(settings)):
        try:
            declared = tick(redis, ingest, settings, ask)
        except RedisError:
            continue  # the worker loop reports Redis outages
        except Exception:
            log.exception("receipt watchdog pass failed; trying again next interval")
            continue
        if declared:
            log.info("receipt watchdog: %d message(s) without a final status by their deadline", declared)
