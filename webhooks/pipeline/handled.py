"""Marks of handler jobs that ran to the end, so a job RQ runs again after the fact is not handled twice.

RQ records a job's success only after the job function returns. If the worker is killed, or
Redis goes away, in between, the job stays "started"; RQ's maintenance later declares it
abandoned and runs it again, although the handler had done its work (bench/faults scenario 2
saw a batch delivered twice this way). So `webhooks.jobs.handle` writes a mark the moment the
handler returns, waiting for Redis if it is away, and a job that finds its mark returns at once.

What remains is the time between a handler's last side effect and the mark (one Redis round
trip, or a Redis outage longer than JOB_TIMEOUT): handlers must still be safe to run twice, as
the database handler is, but a re-run after the fact no longer repeats them.
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "smshooks:handled:"
TTL = 24 * 3600  # seconds; far beyond a job's last retry (RETRY_INTERVALS) or abandonment


def already_handled(redis: Redis, job_id: str) -> bool:
    """True when this handler job ran to the end before (and RQ is running it again)."""
    return bool(redis.exists(PREFIX + job_id))


def mark_handled(redis: Redis, job_id: str, wait: float) -> None:
    """Record that the job's handler returned; retry for up to `wait` s while Redis is away."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        try:
            redis.set(PREFIX + job_id, 1, ex=TTL)
            return
        except RedisError as err:
            if time.monotonic() + delay > deadline:
                # RQ cannot record the success either; the job will run again and the
                # handler's own idempotency is what is left.
                log.warning("could not mark %s handled (%s): it may be handled again", job_id, type(err).__name__)
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
