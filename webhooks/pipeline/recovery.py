"""Jobs of a worker that died mid-job go back to the queue seconds after it died, not minutes.

RQ keeps a running job in its queue's StartedJobRegistry as `<job id>:<execution id>`, and the
execution's hash (`rq:execution:...`) names the worker running it. Left to itself, RQ gives up on
a killed worker's job only when that entry expires, the job's timeout + 60 s after it started, and
then spends one of its retries on it, after the first retry interval.

Here a worker is dead when its key `rq:worker:<name>` is gone. Every RQ worker keeps its key while
it runs a job (a stock one for the job's timeout + 60 s), so a live worker's job is never taken.
`smshooks worker` keeps its own alive LEASE seconds at a time (`Lease`, renewed from a thread
while jobs run too), so a killed one's key is gone LEASE s after the kill. `recover` finds the
started jobs of dead workers and puts each back at the front of its queue, once, whoever else is
looking (the requeue watches the job's key). A requeued handler job whose handler had returned
finds its handled mark and returns (pipeline/handled.py); one cut off before that runs again.

When Redis has just restarted, or this worker found its own key gone (a Redis that lost its keys,
a failover), every live worker's key may be missing for a moment: nothing is taken until they
have had LEASE s to renew theirs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Collection
from typing import cast

from redis import ConnectionPool, Redis
from redis.exceptions import RedisError, WatchError
from rq import worker_registration
from rq.connections import parse_connection
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import as_text, now, utcformat
from rq.worker import BaseWorker

log = logging.getLogger(__name__)

LEASE = 10  # seconds a worker's key lives unless renewed: how long a killed worker's jobs wait
RENEW_EVERY = 2.0  # seconds between renewals (and recovery passes): five chances per lease
# Entries this close to expiring belong to RQ's own sweep, which reads them without a lock of
# ours; only a pass holding RQ's maintenance lock (the one that sweep takes) takes them too.
MARGIN = 5


@dataclasses.dataclass(frozen=True)
class Orphan:
    """A started job whose worker is gone."""

    job_id: str
    execution_id: str
    worker_name: str


def _settling(redis: Redis) -> bool:
    """Redis restarted less than a lease ago: live workers may not have renewed their keys yet."""
    return int(redis.info("server")["uptime_in_seconds"]) < LEASE + 2 * RENEW_EVERY


def orphans(queue: Queue, exclude: Collection[str] = (), expiring: bool = False) -> list[Orphan]:
    """The queue's started jobs whose worker's key is gone (never those of a worker in `exclude`)."""
    redis = queue.connection
    # redis-py types ZRANGE's answer loosely; with scores it is (member, score) pairs.
    entries = cast(list[tuple[bytes, float]], redis.zrange(queue.started_job_registry.key, 0, -1, withscores=True))
    horizon = time.time() + MARGIN
    candidates = [
        Execution.from_composite_key(as_text(member), connection=redis)
        for member, score in entries
        if expiring or score > horizon
    ]
    if not candidates or _settling(redis):
        return []
    with redis.pipeline(transaction=False) as pipe:
        for execution in candidates:
            pipe.hget(execution.key, "worker_name")
        names = [as_text(name) if name else "" for name in pipe.execute()]
    # No hash: the execution expired with its entry, which is RQ's sweep's to handle.
    found = [(e, name) for e, name in zip(candidates, names, strict=True) if name and name not in exclude]
    workers = sorted({name for _, name in found})
    with redis.pipeline(transaction=False) as pipe:
        for name in workers:
            pipe.exists(BaseWorker.redis_worker_namespace_prefix + name)
        alive = {name for name, exists in zip(workers, pipe.execute(), strict=True) if exists}
    return [Orphan(e.job_id, e.id, name) for e, name in found if name not in alive]


def requeue(queue: Queue, orphan: Orphan) -> bool:
    """Put the job back at the front of its queue, its execution dropped; False if it was no longer there."""
    redis = queue.connection
    execution = Execution(orphan.execution_id, orphan.job_id, connection=redis, worker_name=orphan.worker_name)
    with redis.pipeline() as pipe:
        try:
            # Another recoverer's requeue writes the job's hash: of two, one EXEC fails.
            pipe.watch(Job.key_for(orphan.job_id))
            if pipe.zscore(queue.started_job_registry.key, execution.composite_key) is None:
                return False  # finished, or requeued by someone else
            job = Job.fetch(orphan.job_id, connection=redis, serializer=queue.serializer)
            # QUEUED: the worker died between taking the job and marking it started.
            if job.get_status(refresh=False) not in (JobStatus.STARTED, JobStatus.QUEUED):
                return False
            pipe.multi()
            execution.delete(job=job, pipeline=pipe)
            # Still here if it died before RQ moved it out: RQ would otherwise fail it there later.
            pipe.lrem(queue.intermediate_queue_key, 0, job.id)
            job.started_at = job.ended_at = None
            queue._enqueue_job(job, pipeline=pipe, at_front=True)  # as RQ's own registry.requeue does
            pipe.execute()
        except (WatchError, NoSuchJobError):
            return False
    return True


def recover(queue: Queue, exclude: Collection[str] = (), expiring: bool = False) -> list[str]:
    """Requeue the started jobs of dead workers; the ids of those this call requeued."""
    requeued = []
    for orphan in orphans(queue, exclude, expiring):
        try:
            done = requeue(queue, orphan)
        except RedisError:
            raise  # an outage: the caller's loop reports it and tries again
        except Exception:  # one unreadable job must not keep the others from their queue
            log.exception("could not requeue job %s of dead worker %s", orphan.job_id, orphan.worker_name)
            continue
        if done:
            log.warning(
                "job %s went back to the queue: its worker %s is gone (no heartbeat for %d s)",
                orphan.job_id,
                orphan.worker_name,
                LEASE,
            )
            requeued.append(orphan.job_id)
    return requeued


class Lease:
    """Keeps a worker's key alive LEASE s at a time and, every RENEW_EVERY s, requeues dead workers' jobs.

    A thread of its own, with a Redis client of its own (short timeouts, the worker's TLS
    settings), so it goes on while the worker runs a job or waits in BLPOP.
    """

    def __init__(self, worker: BaseWorker) -> None:
        self.worker = worker
        redis_class, connection_class, kwargs = parse_connection(worker.connection)
        kwargs.update(socket_timeout=RENEW_EVERY, socket_connect_timeout=RENEW_EVERY)
        self.redis = redis_class(connection_pool=ConnectionPool(connection_class=connection_class, **kwargs))
        self._stop = threading.Event()
        self._quiet_until = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * RENEW_EVERY)

    @property
    def quiet(self) -> bool:
        """This worker's own key was lost lately: others' keys may be missing for the same reason."""
        return time.monotonic() < self._quiet_until

    def renew(self) -> None:
        worker = self.worker
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(worker.key, LEASE)
            pipe.hexists(worker.key, "birth")
            pipe.expire(worker.executions_key, LEASE)
            kept, whole, _ = pipe.execute()
        if kept and whole:
            self.redis.hset(worker.key, "last_heartbeat", utcformat(now()))
            return
        # Gone (or re-made by a bare heartbeat): Redis lost it, or this process stalled past its lease.
        log.warning("worker %s: its key in Redis was gone; registering it again", worker.name)
        self._quiet_until = time.monotonic() + LEASE + 2 * RENEW_EVERY
        with self.redis.pipeline() as pipe:
            pipe.hset(worker.key, mapping={**worker.serialize(), "state": worker.get_state()})
            worker_registration.register(worker, pipe)
            pipe.expire(worker.key, LEASE)
            pipe.execute()

    def _run(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                self.renew()
                if self.quiet:
                    continue
                for name in self.worker.queue_names():
                    recover(Queue(name, connection=self.redis, serializer=self.worker.serializer), {self.worker.name})
            except RedisError:
                pass  # the worker's loop reports Redis outages; the next round tries again
            except Exception:  # the lease must outlive anything unexpected, or the worker counts as dead
                log.exception("worker %s: lease round failed", self.worker.name)
