"""Per-message order for handlers that ask for it (`Handler.ordered`, the forward handler).

RQ runs jobs in parallel and retries a failed one later, so without help a later job could
deliver a message's `delivered` before an earlier job, still being retried, delivers its
`sent`. For an ordered handler the dispatcher therefore remembers, per (lane, message), the
last job that carries an event of that message and is not done yet, and makes the next such
job depend on it (RQ's `depends_on`, allowing failure): RQ holds the later job as deferred
until the earlier one has finished, or failed for good.

The marks live only while a job is in flight: a job releases its messages' marks when it
ends (compare-and-delete, so a newer job's mark stays), and they expire after `TTL` in any
case. So memory grows with the messages in flight, not with all messages ever seen, and a
message whose events are far apart costs no dependency at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis import Redis
from redis.client import Pipeline

PREFIX = "smshooks:order:"
TTL = 24 * 3600  # seconds; beyond any retry schedule (RETRY_INTERVALS) of the jobs it orders

# KEYS: the marks; ARGV[1]: the job id. Deletes each mark that still names this job.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


def marks(lane: str, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The mark of every message the events belong to, in first-seen order, each once."""
    keys = dict.fromkeys(f"{PREFIX}{lane}:{e['provider']}:{e['message_id']}" for e in events)
    return list(keys)


class Sequencer:
    """For one dispatch batch: which earlier jobs each new job of an ordered lane must wait for.

    Call `after` for the jobs in the order their events were stored; it answers from this
    batch's own jobs first and from the marks in Redis for earlier batches.
    """

    def __init__(self, redis: Redis, keys: Sequence[str]) -> None:
        stored = redis.mget(keys) if keys else []
        self.latest: dict[str, str] = {
            key: value.decode() if isinstance(value, bytes) else value
            for key, value in zip(keys, stored, strict=True)
            if value
        }

    def after(self, job_id: str, keys: Sequence[str]) -> list[str]:
        """The unfinished jobs `job_id` waits for; from now on, later jobs of these messages wait for it."""
        waits = dict.fromkeys(self.latest[k] for k in keys if k in self.latest and self.latest[k] != job_id)
        for key in keys:
            self.latest[key] = job_id
        return list(waits)


def record(pipe: Pipeline, keys: Sequence[str], job_id: str) -> None:
    """Mark `job_id` as the last job of these messages (in the dispatcher's transaction)."""
    for key in keys:
        pipe.set(key, job_id, ex=TTL)


def release(redis: Redis, lane: str, events: Iterable[Mapping[str, Any]], job_id: str) -> None:
    """The job has ended: later jobs of its messages need not wait for it."""
    keys = marks(lane, events)
    if keys:
        redis.eval(_RELEASE, len(keys), *keys, job_id)
