"""Marks of handler jobs that ran to the end, so a job RQ runs again after the fact is not handled twice.

RQ records a job's success only after the job function returns. If the worker is killed, or
Redis goes away, in between, the job stays "started"; RQ's maintenance later declares it
abandoned and runs it again, although the handler had done its work (bench/faults scenario 2
saw a batch delivered twice this way). So `webhooks.jobs.handle` writes a mark the moment the
handler returns, waiting for Redis if it is away, and a job that finds its mark returns at once.

What remains is the time between a handler's last side effect and the mark (one Redis round
trip, which carries the success's counts too, or a Redis outage longer than JOB_TIMEOUT):
handlers must still be safe to run twice, as the database handler is, but a re-run after the
fact no longer repeats them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "smshooks:handled:"
TTL = 24 * 3600  # seconds; far beyond a job's last retry (RETRY_INTERVALS) or abandonment


def key(job_id: str) -> str:
    """The job's mark (jobs.handle reads it in the round trip that counts the attempt)."""
    return PREFIX + job_id


def already_handled(redis: Redis, job_id: str) -> bool:
    """True when this handler job ran to the end before (and RQ is running it again)."""
    return bool(redis.exists(key(job_id)))


def mark_handled(redis: Redis, job_id: str, wait: float, along: Callable[[Pipeline], None] | None = None) -> None:
    """Record that the job's handler returned; retry for up to `wait` s while Redis is away.

    `along` adds writes to the same round trip (the success's counts, the order's release). They
    are sent again with each retry, so a Redis that took them but whose answer was lost gets
    them twice; an error of theirs alone is logged, never retried.
    """
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        try:
            with redis.pipeline(transaction=False) as pipe:
                pipe.set(key(job_id), 1, ex=TTL)
                if along is not None:
                    along(pipe)
                marked, *others = pipe.execute(raise_on_error=False)
            if isinstance(marked, Exception):
                raise marked  # refused (out of memory, a read-only replica): as if Redis were away
        except RedisError as err:
            if time.monotonic() + delay > deadline:
                # RQ cannot record the success either; the job will run again and the
                # handler's own idempotency is what is left.
                log.warning("could not mark %s handled (%s): it may be handled again", job_id, type(err).__name__)
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            continue
        for result in others:
            if isinstance(result, Exception):
                log.warning("%s is marked handled, but a write along with the mark failed: %s", job_id, result)
        return
