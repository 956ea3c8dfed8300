"""Per-handler settings (<NAME>_EVENTS, <NAME>_RETRY_INTERVALS), broken handlers, and when the fallback fires."""

from __future__ import annotations

import pytest

from tests.conftest import SECRET, run_worker
from tests.local_services import smtp_server
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks import create_app
from webhooks.pipeline import jobs
from webhooks.pipeline.queueing import dispatch_inbox, queue_for

TOKEN = f"?token={SECRET}"
RECORDER = "tests.support_handlers:Recorder"
FLAKY = "tests.support_handlers:Flaky"


def post_receipts(client, *results: str) -> None:
    messages = {"Count": len(results)}
    for n, result in enumerate(results, 1):
        messages[str(n)] = {**MESSAGE_1, "SMSId": 100 + n, "Result": result}
    assert client.post(f"/redoxygen/receipt{TOKEN}", json={"Messages": messages}).status_code == 200


def test_events_setting_gives_a_handler_only_what_it_wants(env, redis):
    env = {**env, "HANDLERS": f"database,{RECORDER}", "RECORDER_EVENTS": "failed,reply"}
    client = create_app(env).test_client()
    post_receipts(client, "0000", "2015")  # delivered, failed
    client.post(f"/redoxygen/reply{TOKEN}", data=REPLY)
    run_worker(env)
    recorded = [i.decode() for i in redis.lrange("test:recorder", 0, -1)]
    assert len(recorded) == 2
    from tests.processes import rows

    kinds = dict(rows(env["DATABASE_URL"], "select event_id, status from sms_events"))
    assert len(kinds) == 3, "the database still gets everything"
    assert sorted(kinds[i] for i in recorded) == ["failed", "received"]


def test_a_handler_that_wants_none_of_a_batch_gets_no_job(env, redis):
    env = {**env, "HANDLERS": f"database,{RECORDER}", "RECORDER_EVENTS": "reply"}
    post_receipts(create_app(env).test_client(), "0000")
    runtime = jobs.Runtime.from_env(env)
    queue = queue_for(redis, "smshooks")
    dispatch_inbox(redis, queue, runtime.settings, runtime.policies)
    runtime.close()
    handlers = [job.args[0] for job in queue.jobs if job.func_name == "webhooks.pipeline.jobs.handle"]
    assert handlers == ["database"]


def test_retry_intervals_per_handler_override_the_default(env, redis):
    env = {**env, "HANDLERS": f"database,{FLAKY}", "RETRY_INTERVALS": "5,6,7", "FLAKY_RETRY_INTERVALS": "1,2"}
    post_receipts(create_app(env).test_client(), "0000")
    runtime = jobs.Runtime.from_env(env)
    queue = queue_for(redis, "smshooks")
    dispatch_inbox(redis, queue, runtime.settings, runtime.policies)
    runtime.close()
    retries = {
        job.args[0]: (job.retries_left, job.retry_intervals)
        for job in queue.jobs
        if job.func_name == "webhooks.pipeline.jobs.handle"
    }
    assert retries == {"database": (3, [5, 6, 7]), FLAKY: (2, [1, 2])}


@pytest.mark.parametrize(
    "setting, value, expected",
    [
        ("RECORDER_EVENTS", "failed,bogus", "RECORDER_EVENTS may name kinds and statuses .* got 'bogus'"),
        ("RECORDER_RETRY_INTERVALS", "1,soon", "RECORDER_RETRY_INTERVALS must be comma-separated seconds"),
    ],
)
def test_bad_handler_setting_breaks_that_handler_only(env, redis, setting, value, expected):
    import re

    runtime = jobs.Runtime.from_env({**env, "HANDLERS": f"database,{RECORDER}", setting: value})
    try:
        assert list(runtime.handlers) == ["database"]
        assert re.search(expected, runtime.broken[RECORDER])
    finally:
        runtime.close()


def test_unknown_and_broken_handlers_are_reported_by_name_and_the_others_run(env, redis):
    env = {**env, "HANDLERS": f"database,nope,tests.support_handlers:Broken,{RECORDER}", "RETRY_INTERVALS": "none"}
    post_receipts(create_app({**env, "HANDLERS": "database"}).test_client(), "0000")
    runtime = run_worker(env)
    assert set(runtime.broken) == {"nope", "tests.support_handlers:Broken"}
    # The list of installed names grows with plug-ins (the tests install one): only its start is fixed.
    assert runtime.broken["nope"].startswith("unknown handler 'nope' in HANDLERS; installed: database, email, ")
    assert runtime.broken["tests.support_handlers:Broken"] == (
        "handler 'tests.support_handlers:Broken' cannot start: BROKEN_URL must be an http:// URL, got None"
    )
    assert redis.llen("test:recorder") == 1
    from webhooks.pipeline.failures import failed

    errors = {job.handler: job.error for job in failed(queue_for(redis, "smshooks"))}
    assert errors["nope"].startswith("LookupError: unknown handler 'nope'")
    assert "BROKEN_URL must be an http:// URL" in errors["tests.support_handlers:Broken"]


def test_fallback_fires_only_after_the_last_retry(env, redis):
    with smtp_server() as (sink, url):
        env = {
            **env,
            "HANDLERS": f"database,{FLAKY}",
            "RETRY_INTERVALS": "0,0",
            "SMTP_URL": url,
            "FALLBACK_EMAIL_TO": "fallback@example.com",
        }
        client = create_app(env).test_client()
        redis.set("test:flaky:failures", 2)  # fails twice, the last retry succeeds
        post_receipts(client, "0000")
        run_worker(env)
        assert int(redis.get("test:flaky:attempts")) == 3 and redis.llen("test:flaky") == 1
        assert sink.messages == [], "no fallback while a retry was still to come"

        redis.set("test:flaky:failures", 100)
        redis.set("test:flaky:attempts", 0)
        post_receipts(client, "2015")
        run_worker(env)
        assert int(redis.get("test:flaky:attempts")) == 3
        [mail] = sink.to("fallback@example.com")
    body = mail.get_content()
    assert FLAKY in mail["Subject"] and "ConnectionError: flaky service is down" in mail["Subject"]
    assert "after 3 attempt(s)" in body and "Reason: ConnectionError: flaky service is down" in body
    assert "receipt failed SMS 101 (+61111222333, redoxygen" in body and "smshooks replay handle-" in body


def test_fallback_email_never_carries_the_secret(env, redis):
    with smtp_server() as (sink, url):
        env = {
            **env,
            "HANDLERS": "tests.support_handlers:Leaky",
            "RETRY_INTERVALS": "none",
            "SMTP_URL": url,
            "FALLBACK_EMAIL_TO": "fallback@example.com",
        }
        post_receipts(create_app(env).test_client(), "0000")
        run_worker(env)
        [mail] = sink.to("fallback@example.com")
    assert "token=" in mail.get_content()
    assert SECRET not in mail.as_string()


def test_fallback_email_never_carries_any_configured_secret(env, redis):
    hook = "https://hooks.slack.com/services/T0001/B0002/s3cr3tS1ackP4th"
    with smtp_server() as (sink, url):
        env = {
            **env,
            "HANDLERS": "tests.support_handlers:Leaky",
            "RETRY_INTERVALS": "none",
            "SMTP_URL": url,
            "FALLBACK_EMAIL_TO": "fallback@example.com",
            "SLACK_WEBHOOK_URL": hook,
            "LEAK": hook,
        }
        post_receipts(create_app(env).test_client(), "0000")
        run_worker(env)
        [mail] = sink.to("fallback@example.com")
    assert "s3cr3tS1ackP4th" not in mail.as_string() and "[secret]" in mail.get_content()


def test_a_handler_with_max_batch_gets_jobs_no_bigger(env, redis):
    batched = "tests.support_handlers:Batched"
    env = {**env, "HANDLERS": f"database,{batched}"}
    post_receipts(create_app(env).test_client(), *["0000"] * 5)
    runtime = jobs.Runtime.from_env(env)
    dispatch_inbox(redis, queue_for(redis, "smshooks"), runtime.settings, runtime.policies)
    runtime.close()
    sizes = sorted(
        (job.args[0], len(job.args[1]))
        for job in queue_for(redis, "smshooks").jobs
        if job.func_name == "webhooks.pipeline.jobs.handle"
    )
    assert sizes == [("database", 5), (batched, 1), (batched, 2), (batched, 2)]
