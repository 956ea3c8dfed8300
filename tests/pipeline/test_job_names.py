"""Jobs enqueued by releases before webhooks/ moved into rooms name `webhooks.jobs.*`: they still run and replay."""

from __future__ import annotations

from rq import Callback

from tests.conftest import run_worker
from tests.processes import rows
from webhooks.events import EVENT_SCHEMA, Event, Kind, Status, utcnow
from webhooks.pipeline.failures import failed, replay
from webhooks.pipeline.queueing import queue_for


def old_style_job(redis, handler: str, message_id: str, job_id: str):
    event = EVENT_SCHEMA.dump(Event("redoxygen", Kind.RECEIPT, Status.DELIVERED, message_id, utcnow()))
    return queue_for(redis, "smshooks").enqueue(
        "webhooks.jobs.handle", handler, [event], job_id=job_id, on_failure=Callback("webhooks.jobs.handler_failed")
    )


def test_a_job_enqueued_under_the_old_name_is_handled(env, redis):
    old_style_job(redis, "database", "legacy-1", "handle-database-legacy")
    run_worker(env)
    assert rows(env["DATABASE_URL"], "select message_id, status from sms_events") == [("legacy-1", "delivered")]


def test_a_failed_job_under_the_old_name_is_listed_and_replayed(env, redis):
    old_style_job(redis, "log", "legacy-2", "handle-log-legacy")
    run_worker(env)  # HANDLERS=database: no `log` in this worker, the job fails for good
    queue = queue_for(redis, "smshooks")
    assert [(job.id, job.handler) for job in failed(queue)] == [("handle-log-legacy", "log")]
    assert replay(queue) == ["handle-log-legacy"]
    run_worker({**env, "HANDLERS": "database,log"})
    assert failed(queue) == []
    assert queue.fetch_job("handle-log-legacy").get_status() == "finished"
