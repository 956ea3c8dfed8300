"""Digitaleo pings to events, spending as few API calls as the provider asks (section 2.9).

The web side only records a ping (`record_ping`): in lookup mode it adds the id to a
pending set, and in both modes it raises a "sync due" flag; whoever raises the flag
schedules one sync job `ping_delay` seconds later. Every ping in that window finds the
flag up and costs nothing more, so a burst of pings costs one job. The job lowers the
flag before its first API call: a ping arriving during a sync schedules exactly one more.

The job (`run`, in the worker) then either
- queue mode: drains `GET /status?action=queue&limit=2000` (3.11.3) while full pages
  come back, one drain at a time across workers (a Redis lock), then looks up the ids
  `ask_about` left pending (the receipt watchdog's); or
- lookup mode: asks `GET /smsstatus?smsId=a,b,c` (3.12) about the pending ids in
  batches; a status read again is dropped by the ingest's dedupe.

A ping is news whatever the message's stored status: `ok` is not the end, a `rep` (the
recipient's reply) follows it (2.8, 2.11). So a pinged id is asked about once per burst
even when final; only the safety sync, which has no news, skips final ids (2.9).

Events go through the web's own write (`Ingest.store`): deduplicated by event id and
dispatched to every handler like any callback. A safety sync every
`DIGITALEO_SAFETY_INTERVAL` seconds (`safety_loop`, a thread in each worker; one Redis
key makes it run once per interval across workers) catches changes whose ping was lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import LockError, RedisError
from rq import Queue

from webhooks.config import Settings
from webhooks.events import Event, utcnow
from webhooks.pipeline.queueing import FAILURE_TTL, Ingest, queue_for, retry_policy
from webhooks.providers import ParseContext, ParseError
from webhooks.redis_connection import redis_client

from . import statuses
from .config import DigitaleoConfig

if TYPE_CHECKING:  # the web side records pings without loading requests
    import requests

    from .api import DigitaleoClient

log = logging.getLogger("webhooks.digitaleo")

DUE = "smshooks:digitaleo:due"  # a sync job is scheduled and has not started yet
PENDING = "smshooks:digitaleo:pending"  # ids pinged (lookup) or asked about (ask_about), not yet looked up
OPEN = "smshooks:digitaleo:open"  # lookup: id -> first ping time, until its status is final
FINAL_PREFIX = "smshooks:digitaleo:final:"  # the safety sync never asks about this id again (a ping still does)
DRAIN_LOCK = "smshooks:digitaleo:drain-lock"
SAFETY_KEY = "smshooks:digitaleo:safety"

PAGE = 2000  # the most statuses one request returns (2.9)
MAX_PAGES = 50  # pages one job reads before handing over to the next job
DUE_MARGIN = 60  # seconds the due flag outlives the delay: a lost job only delays the next ping's sync
SYNC_TIMEOUT = 900  # seconds a sync job may run (pages × timeouts × retries)
SYNC_RETRY = (10, 30, 60, 300, 600)  # the API down: the job is tried again, nothing is lost meanwhile
OPEN_MAX_AGE = 2 * 24 * 3600  # a message still not final after two days is no longer re-checked
STORE_BACKOFF = (0.5, 1, 2, 4)  # seconds between attempts to store what the queue handed out
PROPERTIES = "smsId,status,recipient,mailingId,date,description,response"

_session: requests.Session | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_ping(redis: Redis, queue: Queue, config: DigitaleoConfig, sms_id: str) -> bool:
    """Remember a ping and make sure one sync will run; True when this ping scheduled it. Raises RedisError."""
    return _pend(redis, queue, config, [sms_id] if config.mode == "lookup" else [], track=True)


def ask_about(redis: Redis, queue: Queue, config: DigitaleoConfig, sms_ids: Sequence[str]) -> bool:
    """Have the next sync look these ids up (batched with the pings) and make sure one runs soon.

    False when the API is not configured (nothing can be asked). Works in both modes: a
    queue-mode sync looks up what is pending after its drain. Raises RedisError.
    """
    if not config.enabled:
        return False
    ids = [i for i in (statuses.as_sms_id(v) for v in ([sms_ids] if isinstance(sms_ids, str) else sms_ids)) if i]
    if ids:
        # Not tracked in OPEN: the caller (the receipt watchdog) decides when to ask again.
        _pend(redis, queue, config, ids, track=False)
    return True


def _pend(redis: Redis, queue: Queue, config: DigitaleoConfig, ids: Sequence[str], *, track: bool) -> bool:
    """Add ids to PENDING (and OPEN when `track`) and raise DUE; True when this call scheduled the sync."""
    with redis.pipeline(transaction=True) as pipe:
        if ids:
            pipe.sadd(PENDING, *ids)
            if track:
                pipe.zadd(OPEN, {i: time.time() for i in ids}, nx=True)
        pipe.set(DUE, "1", nx=True, ex=config.ping_delay + DUE_MARGIN)
        due = pipe.execute()[-1]
    if due:
        try:
            schedule(queue, config.ping_delay)
        except RedisError:
            try:
                redis.delete(DUE)  # so the provider's retry of this ping schedules the sync
            except RedisError:
                pass  # the flag expires after DUE_MARGIN seconds
            raise
    return bool(due)


def schedule(queue: Queue, delay: int) -> None:
    """Enqueue one sync job in `delay` seconds (RQ's scheduler runs in every worker)."""
    options: dict[str, Any] = dict(
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        job_timeout=SYNC_TIMEOUT,
        retry=retry_policy(SYNC_RETRY),
        description="digitaleo: read what the pings announced",
    )
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), "webhooks.pipeline.jobs.digitaleo_sync", **options)
    else:
        queue.enqueue("webhooks.pipeline.jobs.digitaleo_sync", **options)


def _ensure_scheduled(redis: Redis, queue: Queue, delay: int) -> None:
    if redis.set(DUE, "1", nx=True, ex=delay + DUE_MARGIN):
        schedule(queue, delay)


def client_for(config: DigitaleoConfig, redis: Redis) -> DigitaleoClient:
    """A client on this process's one Session (its connection pool is reused job after job)."""
    from .api import DigitaleoClient, make_session

    global _session
    if _session is None:
        _session = make_session()
    return DigitaleoClient(config, redis, _session)


def run(
    redis: Redis, queue: Queue, settings: Settings, config: DigitaleoConfig, client: DigitaleoClient | None = None
) -> int:
    """One sync job: what the pings announced, read from the API and stored; returns events stored."""
    redis.delete(DUE)  # pings from now on schedule the next sync
    if not config.enabled:
        log.error(
            "Digitaleo pings arrive but DIGITALEO_CLIENT_ID / DIGITALEO_CLIENT_SECRET are not set: "
            "statuses cannot be read"
        )
        return 0
    sync = _Sync(redis, queue, settings, config, client or client_for(config, redis))
    if config.mode == "lookup":
        return sync.look_up()
    stored = sync.drain()
    if sync.drained_final and redis.exists(PENDING):  # asked about, answered by the queue: no call for them
        redis.srem(PENDING, *sync.drained_final)
    return stored + sync.look_up()


class _Sync:
    def __init__(
        self, redis: Redis, queue: Queue, settings: Settings, config: DigitaleoConfig, client: DigitaleoClient
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.settings = settings
        self.config = config
        self.client = client
        self.ingest = Ingest(redis, queue, settings.dedupe_window, settings.reply_match_window)
        self.drained_final: set[str] = set()  # ids whose final status the drain read

    def drain(self) -> int:
        """Read the status queue until a page comes back short; one drain at a time."""
        lock = self.redis.lock(DRAIN_LOCK, timeout=SYNC_TIMEOUT)
        if not lock.acquire(blocking=False):
            # The running drain may have read its last page before our ping's status arrived.
            _ensure_scheduled(self.redis, self.queue, max(self.config.ping_delay, 1))
            return 0
        stored = 0
        try:
            for _ in range(MAX_PAGES):
                page = self._records(
                    self.client.get("status", {"action": "queue", "limit": PAGE, "properties": PROPERTIES})
                )
                events = self._events(page)
                stored += self._store(events)
                self.drained_final.update(e.message_id for e in events if e.final)
                if len(page) < PAGE:
                    return stored
            _ensure_scheduled(self.redis, self.queue, 0)  # more waits: the next job goes on
            return stored
        finally:
            try:
                lock.release()
            except LockError:
                pass  # it expired; the next drain takes it

    def look_up(self) -> int:
        """Ask about the pending ids in batches, final or not: a ping after `ok` announces a reply."""
        stored = 0
        while True:
            popped = self.redis.spop(PENDING, self.config.lookup_batch)
            assert not isinstance(popped, (bytes, str)), "SPOP with a count answers a list, never one member"
            ids = sorted(_text(i) for i in popped or [])
            if not ids:
                return stored
            try:
                events = self._events(self._history(ids))
            except Exception:
                self.redis.sadd(PENDING, *ids)  # asked again by the job's retry
                raise
            # A message's whole history comes back each time; Ingest.store's dedupe (the seen
            # keys every route shares) drops the statuses already stored, and a reply's id
            # (reply_event_id) differs from its `ok` receipt's, so the `rep` is new.
            stored += self._store(events)
            self._remember_final(events)
            if len(ids) < self.config.lookup_batch:
                # A short batch took every id pinged before this job lowered DUE; an id pinged
                # since raised DUE again and scheduled the next sync. Asking now would spend a
                # call on the few ids of a trickle, which the next sync takes together.
                return stored
            if self.redis.exists(DUE) and self.redis.scard(PENDING) < self.config.lookup_batch:
                # After a full batch, the short rest is the tail of a burst still arriving: the
                # sync its pings scheduled takes it with them (checked before taking it, so a
                # sync starting meanwhile finds every id in PENDING).
                return stored

    def _history(self, ids: Sequence[str]) -> list[Any]:
        """Every status of these messages, page after page (1.2.1)."""
        found: list[Any] = []
        while True:
            page = self._records(
                self.client.get(
                    "smsstatus", {"smsId": ",".join(ids), "limit": PAGE, "offset": len(found), "properties": PROPERTIES}
                )
            )
            found.extend(page)
            if len(page) < PAGE:
                return found

    def _records(self, listing: Any) -> list[Any]:
        try:
            return statuses.records(listing)
        except ParseError as err:
            log.error("Digitaleo answered something that is not a list of statuses: %s", err)
            raise

    def _events(self, records: list[Any]) -> list[Event]:
        ctx = ParseContext(
            received_at=utcnow(),
            phone_region=self.settings.phone_region,
            status_maps={statuses.NAME: self.config.status_map},  # DIGITALEO_STATUS_MAP
        )
        events, bad = statuses.parse_records(records, ctx, self.config.zone)
        for record, reason in bad:
            log.error("Digitaleo status record skipped (%s): %.300r", reason, record)
        return events

    def _remember_final(self, events: list[Event]) -> None:
        """Final SMS ids: the safety sync skips them for as long as event ids are deduplicated."""
        final = {event.message_id for event in events if event.final}
        if not final:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for sms_id in final:
                pipe.set(FINAL_PREFIX + sms_id, "1", ex=self.settings.dedupe_window)
            pipe.zrem(OPEN, *final)
            pipe.execute()

    def _store(self, events: list[Event]) -> int:
        """Store through the web's own write; a brief Redis outage is waited out, as the queue cannot re-read."""
        if not events:
            return 0
        for pause in (*STORE_BACKOFF, None):
            try:
                return sum(self.ingest.store(events))
            except RedisError as err:
                if pause is None:
                    ids = sorted({e.message_id for e in events})
                    log.error(
                        "Digitaleo statuses read but not stored (%s); read them again with /smsstatus for SMS ids %s",
                        type(err).__name__,
                        ",".join(ids),
                    )
                    raise
                time.sleep(pause)
        return 0


def safety_tick(redis: Redis, queue: Queue, config: DigitaleoConfig) -> bool:
    """Schedule a safety sync unless another worker did within the interval; True when this one did."""
    if not config.enabled or not config.safety_interval:
        return False
    if not redis.set(SAFETY_KEY, "1", nx=True, ex=config.safety_interval):
        return False
    if config.mode == "lookup":
        # Ids pinged an interval ago and still not final: their next ping may have been lost
        # (or their job killed after taking them). Asked again, batched, until final or old.
        # A final id is never asked without a ping (2.9), even one a ping put back in OPEN.
        now = time.time()
        redis.zremrangebyscore(OPEN, "-inf", now - OPEN_MAX_AGE)
        members = redis.zrangebyscore(OPEN, "-inf", now - config.safety_interval)
        stale = [_text(i) for i in members if isinstance(i, (bytes, str))]  # no scores asked: members only
        final = redis.mget([FINAL_PREFIX + i for i in stale]) if stale else []
        done = [i for i, f in zip(stale, final, strict=True) if f]
        ask = [i for i, f in zip(stale, final, strict=True) if not f]
        if done:
            redis.zrem(OPEN, *done)
        if not ask:
            return True
        redis.sadd(PENDING, *ask)
    _ensure_scheduled(redis, queue, 0)
    return True


def safety_loop(settings: Settings, config: DigitaleoConfig, stop: threading.Event) -> None:
    """A worker thread: try a safety tick a few times per interval (the Redis key picks one worker)."""
    redis = redis_client(settings.redis_url, settings.redis_ssl_cert_reqs, socket_connect_timeout=2, socket_timeout=5)
    queue = queue_for(redis, settings.queue_name)
    while not stop.wait(max(1.0, min(config.safety_interval / 4, 30.0))):
        try:
            safety_tick(redis, queue, config)
        except RedisError:
            pass  # the worker loop reports Redis outages
