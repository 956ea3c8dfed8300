"""From accepted events to RQ jobs, without ever holding an event only in memory.

The path of an event:

1. The web process runs one Lua script per callback (`store`): for each event it
   marks the event id as seen (SET NX EX window) and, only if it was new (and, for a
   reply, no other route brought it already), appends the event to the inbox list.
   Mark and append are one atomic step, so a failure can never leave an event marked
   seen but not stored. The script also raises a "dispatch pending" flag; whoever
   raises it enqueues one `dispatch` job.
2. The `dispatch` job (webhooks.pipeline.jobs.dispatch) takes up to `batch_size` events off
   the head of the inbox and, in one MULTI/EXEC, enqueues one job per handler carrying
   the whole batch and trims them off the inbox. An event is therefore always either in
   the inbox or in RQ jobs. One dispatcher runs at a time (a Redis lock), so the head
   of the inbox is never taken twice.
3. While workers are busy, events pile up in the inbox and the next dispatch carries
   them all: batches grow with load, and one handler job handles many events.

If the `dispatch` enqueue itself fails (Redis went away between the two calls), the
flag expires after `FLAG_TTL` seconds and the next callback, or the worker's periodic
`kick`, raises it again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from redis import Redis
from redis.exceptions import LockNotOwnedError, NoScriptError
from rq import Callback, Queue, Retry
from rq.job import Dependency
from rq.serializers import JSONSerializer

from webhooks.config import Settings
from webhooks.events import Event, wire_json
from webhooks.redis_connection import DirectCommand
from webhooks.telemetry import live

from . import deadlines, ordering

if TYPE_CHECKING:
    from handlers.policy import Policy

INBOX = "smshooks:inbox"
DISPATCH_FLAG = "smshooks:dispatch:pending"
DISPATCH_LOCK = "smshooks:dispatch:lock"
SEEN_PREFIX = "smshooks:seen:"
FLAG_TTL = 10  # seconds; bounds how long a lost dispatch enqueue delays events
LOCK_TIMEOUT = 60  # seconds a killed dispatcher can hold the lock
RESULT_TTL = 600  # seconds a handler job's result stays readable
DISPATCH_RESULT_TTL = 10  # seconds a finished dispatch job stays (it carries no events)
FAILURE_TTL = 30 * 24 * 3600  # failed handler jobs stay for inspection and replay

REPLIES_PREFIX = "smshooks:replies:"  # + a reply's match key: per route, how many distinct copies it brought

# KEYS: inbox, flag, this minute's live hash, the live events total (telemetry/live.py). ARGV: flag ttl,
# seen prefix, replies prefix, match window, the callback's live fields when it is counted here
# (accepted, duplicate; '' when not), the live hash's ttl, then per event six values: event id,
# payload, seconds its id is remembered, match key ('' but for replies), route, its live field.
# Returns one 1/0 per event (stored / duplicate) and, last, 1 when a dispatch must be enqueued.
# The counts ride in this call so that a callback still costs one round trip.
# A reply whose id is new is new only when its route has now brought more replies with these
# words than any other route has within the window: callback then email of one reply is one,
# two callbacks are two, two callbacks then their two emails are two.
_STORE = """
local stored = {}
local any_new = false
for i = 8, #ARGV, 6 do
  local new = redis.call('SET', ARGV[2] .. ARGV[i], '1', 'NX', 'EX', ARGV[i + 2])
  if new and ARGV[i + 3] ~= '' then
    local key, route = ARGV[3] .. ARGV[i + 3], ARGV[i + 4]
    local mine = redis.call('HINCRBY', key, route, 1)
    redis.call('EXPIRE', key, ARGV[4])
    local counts = redis.call('HGETALL', key)
    for j = 1, #counts, 2 do
      if counts[j] ~= route and tonumber(counts[j + 1]) >= mine then
        new = false
      end
    end
  end
  if new then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    redis.call('HINCRBY', KEYS[3], ARGV[i + 5], 1)
    redis.call('HINCRBY', KEYS[4], ARGV[i + 5], 1)
    any_new = true
    stored[#stored + 1] = 1
  else
    stored[#stored + 1] = 0
  end
end
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[3], any_new and ARGV[5] or ARGV[6], 1)
end
if any_new or ARGV[5] ~= '' then
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
local kick = 0
if redis.call('LLEN', KEYS[1]) > 0 and redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  kick = 1
end
stored[#stored + 1] = kick
return stored
"""


def received_at(entry: bytes | str | None) -> float | None:
    """An inbox entry's `received_at` in unix seconds; None for no entry, or one that is not an event's JSON."""
    if not entry:
        return None
    try:
        return datetime.fromisoformat(json.loads(entry)["received_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def queue_for(redis: Redis, name: str) -> Queue:
    """The project's queue; jobs carry JSON, not pickles."""
    return Queue(name, connection=redis, serializer=JSONSerializer)


class Ingest:
    """The web side's one write: store events (deduplicated, a reply's copies matched) and make sure a dispatch runs."""

    def __init__(
        self, redis: Redis, queue: Queue, window: int, match_window: int = Settings.reply_match_window
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.window = window  # DEDUPE_WINDOW
        self.match_window = match_window  # REPLY_MATCH_WINDOW
        self._store = redis.register_script(_STORE)
        self._call = DirectCommand(redis)  # the web's one write per callback, without the pool's per-call checks

    def store(self, events: Sequence[Event], callback: live.CallbackCount | None = None) -> list[bool]:
        """Store events in their wire form; True for each event that was new. Raises RedisError.

        `callback`: count the callback that brought them (accepted or duplicate) in the same call.
        """
        return self._run([self._entry(e) for e in events], callback)[0]

    def _entry(self, event: Event) -> tuple[str, bytes, int, str, str, str]:
        payload = wire_json(event)
        counted = live.event_field(event.provider, event.kind.value, event.status.value)
        copy = event.reply_copy
        if copy is None:
            return event.event_id, payload, self.window, "", "", counted
        # An id of the words alone cannot tell a redelivery from a second reply: it is
        # forgotten with the match, and the same words later are a new reply.
        remembered = self.window if copy.distinct else self.match_window
        return event.event_id, payload, remembered, copy.match_key, copy.route, counted

    def kick(self) -> bool:
        """Enqueue a dispatch if events wait in the inbox and none is pending."""
        return self._run([])[1]

    def _run(
        self, events: Sequence[tuple[str, bytes, int, str, str, str]], callback: live.CallbackCount | None = None
    ) -> tuple[list[bool], bool]:
        accepted, duplicate = callback or ("", "")
        args: list[Any] = [FLAG_TTL, SEEN_PREFIX, REPLIES_PREFIX, self.match_window, accepted, duplicate, live.KEEP]
        for entry in events:
            args += entry
        try:
            # EVALSHA itself rather than through the Script object: its wrappers cost more than the call.
            # Safe to send twice (DirectCommand does on a dropped connection): a stored event's id is seen.
            reply = self._call(
                "EVALSHA", self._store.sha, 4, INBOX, DISPATCH_FLAG, live.minute_key(), live.EVENTS_TOTAL, *args
            )
        except NoScriptError:  # a Redis restarted without its scripts: the Script object loads it again
            reply = self._store(keys=[INBOX, DISPATCH_FLAG, live.minute_key(), live.EVENTS_TOTAL], args=args)
        *stored, kick = reply
        if kick:
            self.enqueue_dispatch()
        return [bool(s) for s in stored], bool(kick)

    def enqueue_dispatch(self) -> None:
        self.queue.enqueue(
            "webhooks.pipeline.jobs.dispatch",
            # Kept a few seconds, not deleted at once: RQ's delete of a finished job costs the worker
            # seven more round trips (its status, its executions), each a write fsynced before the next.
            result_ttl=DISPATCH_RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description="dispatch the inbox to handlers",
        )


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def handler_job_id(handler: str, event_ids: Sequence[str]) -> str:
    """Derived from what the job carries, so the same work can never be enqueued twice."""
    digest = hashlib.sha256("\n".join(event_ids).encode()).hexdigest()[:32]
    return f"handle-{_UNSAFE.sub('_', handler)}-{digest}"


def retry_policy(intervals: Sequence[int]) -> Retry | None:
    return Retry(max=len(intervals), interval=list(intervals)) if intervals else None


class _Planned(NamedTuple):
    name: str  # the handler's job name (a lane: `forward`, `forward[2]`)
    events: list[Any]
    intervals: tuple[int, ...]
    ordered: bool


def _jobs(settings: Settings, policies: Mapping[str, Policy], events: list[dict[str, Any]]) -> Iterator[_Planned]:
    """Every job a batch makes: per handler, per lane, the chunks of the events it wants.

    Without a policy a handler gets the whole batch and RETRY_INTERVALS.
    """
    for name in settings.handlers:
        policy = policies.get(name)
        if policy is None:
            yield _Planned(name, events, settings.retry_intervals, False)
            continue
        chunks = policy.jobs(events)
        for lane in policy.lanes or (name,):
            for chunk in chunks:
                yield _Planned(lane, chunk, policy.retry_intervals, policy.ordered)


def _enqueue(queue: Queue, settings: Settings, job: _Planned, job_id: str, **options: Any) -> None:
    queue.enqueue(
        "webhooks.pipeline.jobs.handle",
        job.name,
        job.events,
        job_id=job_id,
        description=f"{job.name}: {len(job.events)} event(s)",
        retry=retry_policy(job.intervals),
        on_failure=Callback("webhooks.pipeline.jobs.handler_failed"),
        # A worker killed mid-job leaves it "started"; the next worker requeues it once the
        # dead one's lease (pipeline/recovery.py, 10 s) ran out, not job_timeout + 60 s later.
        job_timeout=settings.job_timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        **options,
    )


def _existing(redis: Redis, queue: Queue, job_ids: Sequence[str]) -> list[bool]:
    """Which of these jobs exist already, in one round trip."""
    if not job_ids:
        return []
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(queue.job_class.key_for(job_id))
        return [bool(found) for found in pipe.execute()]


def dispatch_inbox(redis: Redis, queue: Queue, settings: Settings, policies: Mapping[str, Policy] | None = None) -> int:
    """Move the inbox into one job per handler, BATCH_SIZE events a turn, until a turn is not full.

    Returns how many events moved.

    `policies` (the worker's, from `<NAME>_EVENTS` / `<NAME>_RETRY_INTERVALS`) give each
    handler only the events it wants, and its own retries; a handler that wants none of
    a batch gets no job for it. Without a policy a handler gets everything.
    """
    # Cleared before reading the inbox: an event pushed after this line raises the
    # flag again and gets a dispatch of its own, so none is left waiting.
    redis.delete(DISPATCH_FLAG)
    moved = 0
    with redis.lock(DISPATCH_LOCK, timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_TIMEOUT) as lock:
        while True:
            # A long drain outlives LOCK_TIMEOUT: renew it each batch, or a second dispatcher
            # would take it and trim the same head of the inbox twice.
            try:
                lock.reacquire()
            except LockNotOwnedError:
                return moved  # it expired and another dispatcher has it now; the inbox is its
            batch = redis.lrange(INBOX, 0, settings.batch_size - 1)
            if not batch:
                return moved
            events = [json.loads(item) for item in batch]
            planned = list(_jobs(settings, policies or {}, events))
            keys = {i: ordering.marks(job.name, job.events) for i, job in enumerate(planned) if job.ordered}
            sequencer = ordering.Sequencer(redis, [k for ks in keys.values() for k in ks]) if keys else None
            waiting: list[tuple[_Planned, str, list[str]]] = []
            job_ids = [handler_job_id(job.name, [e["event_id"] for e in job.events]) for job in planned]
            # RQ's unique=True cannot join a MULTI/EXEC; under the dispatch lock, only this code
            # creates handler jobs, so checking first is just as safe (all in one round trip).
            made = _existing(redis, queue, job_ids)
            with redis.pipeline(transaction=True) as pipe:
                pipe.multi()  # explicitly: RQ's enqueue would start it only at its own first command
                deadlines.track(pipe, settings, events, time.time())  # the receipt watchdog's clocks
                for i, (job, job_id) in enumerate(zip(planned, job_ids, strict=True)):
                    if made[i]:
                        continue
                    after = sequencer.after(job_id, keys[i]) if sequencer is not None and i in keys else []
                    if i in keys:
                        ordering.record(pipe, keys[i], job_id)
                    if after:
                        waiting.append((job, job_id, after))  # enqueued below, once what it waits for exists
                    else:
                        _enqueue(queue, settings, job, job_id, pipeline=pipe)
                if not waiting:
                    pipe.ltrim(INBOX, len(batch), -1)
                pipe.execute()
            if waiting:
                # RQ makes a job that depends on unfinished ones "deferred" (WATCHing them, so one
                # finishing meanwhile is seen): that cannot share the transaction above. If this
                # dies half-way, the inbox was not trimmed and the next dispatch makes what is missing.
                for job, job_id, after in waiting:
                    _enqueue(queue, settings, job, job_id, depends_on=Dependency(jobs=after, allow_failure=True))
                redis.ltrim(INBOX, len(batch), -1)
            moved += len(batch)
            if len(batch) < settings.batch_size:
                # The inbox is drained up to what arrived while this batch was read. Whatever came
                # since raised the flag cleared above and has a dispatch of its own; reading on would
                # make a job of the few events each turn brings (under steady traffic, dozens of
                # one-to-ten-event jobs a dispatch, each paying RQ's bookkeeping) while the inbox grows.
                return moved
