"""The fault suite's fast part: bench/faults' five scenarios with short durations, on real processes.

Each starts a Redis with the embedded default's persistence, gunicorn and `smshooks worker`,
streams callbacks from a separate process, injects its fault and asserts lost = 0 and
duplicated = 0 (and the scenario's own checks). In the worker-killed scenario the cut job runs
again within seconds (its own check), but the scenario takes about a minute: the killed worker's
scheduler holds RQ's scheduler lock for 61 s, and the Digitaleo syncs scheduled meanwhile wait for it.
"""

from __future__ import annotations

import pytest
from redis import Redis

from bench.fault_scenarios import SCENARIOS, quick
from tests.conftest import SECRET, run_worker
from tests.redoxygen_samples import MESSAGE_1
from webhooks import create_app
from webhooks.pipeline.handled import PREFIX
from webhooks.pipeline.queueing import queue_for


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_scenario_loses_and_duplicates_nothing(name, tmp_path):
    outcome = SCENARIOS[name](quick(tmp_path))
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    report = f"{outcome.line()}; problems: {outcome.problems}; notes: {outcome.notes}"
    assert outcome.acknowledged > 0, report
    assert (outcome.lost, outcome.duplicated, outcome.problems) == (0, 0, []), report


def test_a_handler_job_that_ran_to_the_end_is_not_handled_again(env, redis: Redis):
    # RQ runs a job again when it could not record its success (worker killed, Redis gone):
    # the handled mark written when the handler returned makes that re-run a no-op.
    env = {**env, "HANDLERS": "tests.support_handlers:Recorder"}
    assert create_app(env).test_client().post(f"/redoxygen/receipt?token={SECRET}", json=MESSAGE_1).status_code == 200
    run_worker(env)
    assert redis.llen("test:recorder") == 1
    queue = queue_for(redis, "smshooks")
    [job_id] = [k.decode().removeprefix(PREFIX) for k in redis.keys(f"{PREFIX}*")]
    queue.enqueue_job(queue.fetch_job(job_id))  # as RQ's abandoned-job sweep re-enqueues it
    run_worker(env)
    assert redis.llen("test:recorder") == 1


def test_without_its_mark_a_handler_job_run_again_does_handle_again(env, redis: Redis):
    # The control for the test above: the mark, not something else, is what stops the re-run.
    env = {**env, "HANDLERS": "tests.support_handlers:Recorder"}
    assert create_app(env).test_client().post(f"/redoxygen/receipt?token={SECRET}", json=MESSAGE_1).status_code == 200
    run_worker(env)
    [key] = redis.keys(f"{PREFIX}*")
    redis.delete(key)
    queue = queue_for(redis, "smshooks")
    queue.enqueue_job(queue.fetch_job(key.decode().removeprefix(PREFIX)))
    run_worker(env)
    assert redis.llen("test:recorder") == 2
