"""webhooks/pipeline/recovery.py on a real Redis with RQ's own objects: a dead worker's job goes back, once.

A "dead" worker here is an RQ SimpleWorker that took a job the way RQ does (dequeue, execution,
job marked started) and whose key was then deleted, as its expiry would; tests/cli/test_restarts.py
does it with real processes and SIGKILL.
"""

from __future__ import annotations

import os
import time

import pytest
from redis import Redis
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer

from tests.conftest import SECRET, RedisServer, run_worker, wait_for
from tests.redoxygen_samples import MESSAGE_1, MESSAGE_2
from webhooks import create_app
from webhooks.pipeline import jobs
from webhooks.pipeline.handled import mark_handled
from webhooks.pipeline.queueing import queue_for
from webhooks.pipeline.recovery import LEASE, MARGIN, RENEW_EVERY, Lease, Orphan, orphans, recover, requeue


@pytest.fixture
def recorder_env(env):
    return {**env, "HANDLERS": "tests.support_handlers:Recorder"}


def settled(redis: Redis) -> None:
    """Wait out the start-up quiet of a Redis started moments ago (recovery takes nothing then)."""
    wait_for(lambda: int(redis.info("server")["uptime_in_seconds"]) >= LEASE + 2 * RENEW_EVERY, timeout=30)


def handler_jobs(env: dict[str, str], redis: Redis, *payloads: dict) -> list[str]:
    """Post receipts and run only the dispatch job: the handler jobs it enqueued, waiting."""
    client = create_app(env).test_client()
    for payload in payloads:
        assert client.post(f"/redoxygen/receipt?token={SECRET}", json=payload).status_code == 200
    runtime = jobs.Runtime.from_env({**os.environ, **env})
    jobs.configure(runtime)
    try:
        queue = queue_for(redis, "smshooks")
        SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True, max_jobs=1)
    finally:
        jobs.configure(None)
        runtime.close()
    return queue.job_ids


def taken_by_a_worker_that_dies(redis: Redis, queue: Queue, name: str = "killed") -> tuple[SimpleWorker, Job]:
    """A worker takes the next job as RQ does, and then its key goes (it was killed; its lease ran out)."""
    worker = SimpleWorker([queue], connection=redis, serializer=JSONSerializer, name=name)
    worker.register_birth()
    result = Queue.dequeue_any([queue], None, connection=redis, serializer=JSONSerializer)
    assert result is not None
    job, _ = result
    worker.prepare_execution(job)
    worker.prepare_job_execution(job, remove_from_intermediate_queue=True)
    assert job.get_status() == JobStatus.STARTED
    redis.delete(worker.key)
    return worker, job


def test_a_dead_workers_job_goes_back_to_the_front_of_the_queue_once(recorder_env, redis: Redis):
    settled(redis)
    [first] = handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    _, job = taken_by_a_worker_that_dies(redis, queue)
    assert job.id == first
    [second] = handler_jobs(recorder_env, redis, MESSAGE_2)  # another job waits behind it

    assert recover(queue) == [job.id]
    assert queue.job_ids == [job.id, second]  # at the front: it was taken before the other
    assert job.get_status() == JobStatus.QUEUED
    assert queue.started_job_registry.get_job_ids() == []
    assert not redis.keys("rq:execution:*")
    assert recover(queue) == []  # nothing twice
    run_worker(recorder_env)
    expected = [e["event_id"].encode() for j in (job, queue.fetch_job(second)) for e in j.args[1]]
    assert sorted(redis.lrange("test:recorder", 0, -1)) == sorted(expected)


def test_of_two_recoverers_one_requeues(recorder_env, redis: Redis):
    settled(redis)
    handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    _, job = taken_by_a_worker_that_dies(redis, queue)
    [orphan] = orphans(queue)
    assert orphan.job_id == job.id
    assert [requeue(queue, orphan), requeue(queue, orphan)] == [True, False]
    assert queue.job_ids == [job.id]


def test_a_live_workers_job_is_never_taken(recorder_env, redis: Redis):
    settled(redis)
    handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    worker, job = taken_by_a_worker_that_dies(redis, queue)
    worker.register_birth()  # its key is back: alive, however old its job
    assert orphans(queue, expiring=True) == []
    assert recover(queue, expiring=True) == []
    assert job.get_status() == JobStatus.STARTED
    assert queue.job_ids == []
    # Nor this worker's own jobs, whatever its key says (the SIGTERM path requeues those itself).
    redis.delete(worker.key)
    assert orphans(queue, exclude={worker.name}) == []


def test_a_requeued_job_whose_handler_had_returned_is_not_handled_again(recorder_env, redis: Redis):
    # Killed after the handler returned and wrote its mark, before RQ recorded the success.
    settled(redis)
    handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    _, job = taken_by_a_worker_that_dies(redis, queue)
    mark_handled(redis, job.id, wait=1)
    assert recover(queue) == [job.id]
    run_worker(recorder_env)
    assert redis.llen("test:recorder") == 0
    assert job.get_status() == JobStatus.FINISHED


def test_a_job_taken_but_not_yet_started_goes_back_too(recorder_env, redis: Redis):
    # Killed between RQ's two steps: the execution exists, the job is still "queued" and in the
    # intermediate list, from which RQ would later fail it.
    settled(redis)
    handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    worker = SimpleWorker([queue], connection=redis, serializer=JSONSerializer, name="half")
    worker.register_birth()
    job, _ = Queue.dequeue_any([queue], None, connection=redis, serializer=JSONSerializer)
    worker.prepare_execution(job)
    redis.delete(worker.key)
    assert redis.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    assert recover(queue) == [job.id]
    assert queue.job_ids == [job.id]
    assert redis.llen(queue.intermediate_queue_key) == 0


def test_entries_about_to_expire_are_left_to_rqs_sweep_unless_the_pass_holds_its_lock(recorder_env, redis: Redis):
    settled(redis)
    handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    _, job = taken_by_a_worker_that_dies(redis, queue)
    [member] = redis.zrange(queue.started_job_registry.key, 0, -1)
    redis.zadd(queue.started_job_registry.key, {member: time.time() + MARGIN - 1})
    assert orphans(queue) == []
    assert [o.job_id for o in orphans(queue, expiring=True)] == [job.id]


def test_nothing_is_taken_while_a_restarted_redis_settles(tmp_path):
    # Every live worker's key may have expired during the outage; they get a lease to renew it.
    server = RedisServer(tmp_path)
    server.start()
    try:
        redis = Redis.from_url(server.url)
        queue = queue_for(redis, "smshooks")
        queue.enqueue("webhooks.pipeline.jobs.dispatch")
        taken_by_a_worker_that_dies(redis, queue)
        assert orphans(queue) == []
    finally:
        server.stop()


def test_the_lease_keeps_the_key_short_lived_and_brings_it_back_when_lost(redis: Redis):
    worker = SimpleWorker([queue_for(redis, "smshooks")], connection=redis, serializer=JSONSerializer)
    worker.register_birth()
    lease = Lease(worker)
    lease.renew()
    assert 0 < redis.ttl(worker.key) <= LEASE
    assert not lease.quiet
    redis.delete(worker.key)  # Redis lost it (a restart without it, a failover)
    lease.renew()
    assert redis.hget(worker.key, "birth") is not None and 0 < redis.ttl(worker.key) <= LEASE
    assert worker.key.encode() in redis.smembers("rq:workers")
    assert lease.quiet  # and for a lease, this worker takes no one's jobs


def test_orphan_names_the_execution_rq_made(recorder_env, redis: Redis):
    settled(redis)
    handler_jobs(recorder_env, redis, MESSAGE_1)
    queue = queue_for(redis, "smshooks")
    worker, job = taken_by_a_worker_that_dies(redis, queue)
    [execution] = job.get_executions()
    assert orphans(queue) == [Orphan(job.id, execution.id, worker.name)]
