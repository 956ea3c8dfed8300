"""From callback to handler jobs on a real Redis: storing, dedupe, batching, retries, Redis outages."""

from __future__ import annotations

import json

import pytest
from rq.registry import FailedJobRegistry

from tests.conftest import SECRET, run_worker
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks import create_app
from webhooks.config import Settings
from webhooks.pipeline.queueing import DISPATCH_FLAG, INBOX, queue_for

TOKEN = f"?token={SECRET}"
RECORDER = "tests.support_handlers:Recorder"
FLAKY = "tests.support_handlers:Flaky"


def receipt(n: int, result: str = "0000") -> dict:
    return {**MESSAGE_1, "SMSId": n, "Result": result}


@pytest.fixture
def fanout_env(env):
    return {**env, "HANDLERS": f"database,{RECORDER},{FLAKY}"}


def test_accepted_callback_is_in_redis_with_one_dispatch_job(client, redis):
    assert client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1)).status_code == 200
    assert redis.llen(INBOX) == 1
    queue = queue_for(redis, "smshooks")
    assert [job.func_name for job in queue.jobs] == ["webhooks.pipeline.jobs.dispatch"]
    # A second callback while the dispatch is pending joins it instead of adding a job.
    client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(2))
    assert redis.llen(INBOX) == 2 and queue.count == 1


def test_repeated_callback_is_acknowledged_but_not_enqueued_again(client, redis, env):
    first = client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1), headers={"Accept": "application/json"})
    again = client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1), headers={"Accept": "application/json"})
    assert first.get_json()["accepted"] == 1
    assert again.status_code == 200
    assert (again.get_json()["accepted"], again.get_json()["duplicates"]) == (0, 1)
    assert again.get_json()["event_ids"] == first.get_json()["event_ids"]
    assert redis.llen(INBOX) == 1
    ttl = redis.ttl(f"smshooks:seen:{first.get_json()['event_ids'][0]}")
    assert 7 * 24 * 3600 - 10 < ttl <= 7 * 24 * 3600


def test_dedupe_window_is_configurable(env, redis):
    client = create_app({**env, "DEDUPE_WINDOW": "60"}).test_client()
    ids = client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1), headers={"Accept": "application/json"})
    assert 50 < redis.ttl(f"smshooks:seen:{ids.get_json()['event_ids'][0]}") <= 60


def test_each_handler_gets_every_event_once(fanout_env, redis):
    client = create_app(fanout_env).test_client()
    redis.set("test:flaky:failures", 0)
    for n in range(5):
        client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(n))
    client.post(f"/redoxygen/reply{TOKEN}", data=REPLY)
    run_worker(fanout_env)
    recorded = redis.lrange("test:recorder", 0, -1)
    assert len(recorded) == 6 and len(set(recorded)) == 6
    assert sorted(redis.lrange("test:flaky", 0, -1)) == sorted(recorded)
    assert redis.llen(INBOX) == 0


def test_failing_handler_is_retried_alone(fanout_env, redis):
    client = create_app(fanout_env).test_client()
    redis.set("test:flaky:failures", 2)  # RETRY_INTERVALS=0,0: two retries, the second succeeds
    client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1))
    run_worker(fanout_env)
    assert int(redis.get("test:flaky:attempts")) == 3
    assert redis.llen("test:flaky") == 1
    assert redis.llen("test:recorder") == 1, "the recorder must not run again when flaky is retried"


def test_handler_out_of_retries_lands_in_failed_registry_with_reason(fanout_env, redis):
    client = create_app(fanout_env).test_client()
    redis.set("test:flaky:failures", 100)
    client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1))
    run_worker(fanout_env)
    assert int(redis.get("test:flaky:attempts")) == 3  # first try + 2 retries
    failed = FailedJobRegistry(queue=queue_for(redis, "smshooks"))
    [job_id] = failed.get_job_ids()
    job = queue_for(redis, "smshooks").fetch_job(job_id)
    assert job.args[0] == FLAKY
    assert "flaky service is down" in job.latest_result().exc_string
    assert redis.llen("test:recorder") == 1


def test_busy_queue_batches_events_into_few_jobs(fanout_env, redis):
    env = {**fanout_env, "HANDLERS": f"database,{RECORDER}", "BATCH_SIZE": "200"}
    client = create_app(env).test_client()
    for n in range(450):  # no worker running: they pile up behind one pending dispatch
        client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(n))
    assert queue_for(redis, "smshooks").count == 1
    run_worker(env)
    batches = [int(b) for b in redis.lrange("test:recorder:batches", 0, -1)]
    assert batches == [200, 200, 50]
    assert redis.llen("test:recorder") == 450


def test_a_dispatch_stops_at_its_first_short_batch_and_leaves_later_callbacks_their_own(client, redis, env):
    # Under steady traffic a dispatch that read on until the inbox was empty made a job of the
    # few events each turn brought: dozens of tiny jobs, each paying RQ's bookkeeping, while the
    # inbox grew (bench/load at 800/s: callback-to-database p99 of seconds).
    from webhooks.pipeline.queueing import dispatch_inbox

    settings = Settings.from_env({**env, "BATCH_SIZE": "3"})
    for n in range(4):
        client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(n))
    queue = queue_for(redis, "smshooks")
    queue.empty()  # the pending dispatch job: this test runs the dispatch itself
    reads = []
    lrange = redis.lrange

    def a_callback_arrives_during_each_read(key, start, end):
        batch = lrange(key, start, end)
        reads.append(len(batch))
        if len(reads) <= 3:  # bounded, so that a dispatch reading on until the inbox is empty ends too
            client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(100 + len(reads)))
        return batch

    redis.lrange = a_callback_arrives_during_each_read
    try:
        assert dispatch_inbox(redis, queue, settings) == 5
    finally:
        del redis.lrange
    assert reads == [3, 2]  # a full turn, then what was left and what came meanwhile: not a third
    assert redis.llen(INBOX) == 1  # the callback that came during the last turn waits...
    assert [job.func_name for job in queue.jobs if job.func_name.endswith("dispatch")] == [
        "webhooks.pipeline.jobs.dispatch"
    ]  # ...with a dispatch of its own: the flag cleared at the start was raised again
    assert [len(job.args[1]) for job in queue.jobs if job.func_name.endswith("handle")] == [3, 2]


def test_handler_job_id_is_derived_from_its_events(env, redis):
    from webhooks.pipeline.queueing import handler_job_id

    assert handler_job_id("database", ["a", "b"]) == handler_job_id("database", ["a", "b"])
    assert handler_job_id("database", ["a", "b"]) != handler_job_id("database", ["a", "c"])
    assert handler_job_id("tests.x:Y", ["a"]).replace("-", "").replace("_", "").isalnum()


def test_the_same_batch_is_never_enqueued_twice(client, redis, env):
    from webhooks.pipeline.queueing import dispatch_inbox

    client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1))
    batch = redis.lrange(INBOX, 0, -1)
    queue = queue_for(redis, "smshooks")
    dispatch_inbox(redis, queue, Settings.from_env(env))
    redis.rpush(INBOX, *batch)  # the same events again (say, re-sent after the dedupe window)
    dispatch_inbox(redis, queue, Settings.from_env(env))
    handle_jobs = [job_id for job_id in queue.job_ids if job_id.startswith("handle-")]
    assert len(handle_jobs) == 1
    assert redis.llen(INBOX) == 0


def test_jobs_carry_json_events(client, redis, env):
    import zlib

    from webhooks.pipeline.queueing import dispatch_inbox

    client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1))
    dispatch_inbox(redis, queue_for(redis, "smshooks"), Settings.from_env(env))
    [job] = [j for j in queue_for(redis, "smshooks").jobs if j.func_name == "webhooks.pipeline.jobs.handle"]
    # RQ zlib-compresses the serialized call; under it must be JSON, not a pickle.
    func, _instance, (name, events), _kwargs = json.loads(zlib.decompress(redis.hget(f"rq:job:{job.id}", "data")))
    assert (func, name, events[0]["message_id"]) == ("webhooks.pipeline.jobs.handle", "database", "1")


def test_dispatch_flag_expires_so_a_lost_dispatch_is_recovered(client, redis, env):
    # The web stored the event, then failed to enqueue the dispatch (Redis went away between the two calls).
    client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1))
    queue_for(redis, "smshooks").empty()
    assert redis.ttl(DISPATCH_FLAG) > 0
    redis.delete(DISPATCH_FLAG)  # ... and FLAG_TTL seconds passed
    from webhooks.pipeline.queueing import Ingest

    assert Ingest(redis, queue_for(redis, "smshooks"), 60).kick() is True  # the worker's periodic kick
    run_worker(env)
    assert redis.llen(INBOX) == 0


def test_redis_killed_gives_503_then_recovers(redis_server, env, redis):
    client = create_app(env).test_client()
    assert client.get("/healthz").status_code == 200
    redis_server.stop()
    try:
        response = client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1), headers={"Accept": "application/json"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
        assert "retry" in response.get_json()["error"]
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
    finally:
        redis_server.start()
    assert client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1)).status_code == 200
    assert client.get("/healthz").get_json()["inbox"] == 1


def test_a_redis_that_lost_its_scripts_still_stores(client, redis):
    """A Redis restarted from its append-only file has the data but not the scripts: the store loads it again."""
    first = client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(1))
    redis.script_flush()
    second = client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(2))
    assert (first.status_code, second.status_code) == (200, 200)
    assert redis.llen(INBOX) == 2
