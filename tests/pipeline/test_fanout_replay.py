"""A real `smshooks worker` fanning out to database, email and a failing Slack; fallback; replay once."""

from __future__ import annotations

import subprocess

from rq.job import JobStatus

from handlers.database import init_db
from tests.conftest import SECRET, process_env, venv_bin, wait_for
from tests.local_services import slack_stand_in, smtp_server
from tests.processes import WORKER, rows, running
from tests.redoxygen_samples import MESSAGE_1
from webhooks import create_app
from webhooks.pipeline.failures import failed
from webhooks.pipeline.queueing import queue_for


def smshooks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([venv_bin("smshooks"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_fan_out_fallback_and_replay_deliver_each_event_once(redis, redis_server, sqlite_url):
    init_db(sqlite_url)
    with smtp_server() as (sink, smtp_url), slack_stand_in() as slack:
        slack.default = 500  # Slack is down
        env = process_env(
            {
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": sqlite_url,
                "WEBHOOK_SECRET": SECRET,
                "HANDLERS": "database,email,slack",
                "RETRY_INTERVALS": "30",
                "SLACK_WEBHOOK_URL": slack.url,
                "SLACK_RETRY_INTERVALS": "1,1",
                "SMTP_URL": smtp_url,
                "EMAIL_FROM": "smshooks@example.com",
                "EMAIL_TO": "ops@example.com",
                "FALLBACK_EMAIL_TO": "fallback@example.com",
            }
        )
        client = create_app(env).test_client()
        messages = {"Count": 2, "1": {**MESSAGE_1, "SMSId": 201}, "2": {**MESSAGE_1, "SMSId": 202, "Result": "2015"}}
        assert client.post(f"/redoxygen/receipt?token={SECRET}", json={"Messages": messages}).status_code == 200

        with running(WORKER, env=env) as [worker]:
            [fallback] = wait_for(lambda: sink.to("fallback@example.com"), timeout=60)
            # Slack was tried once and retried twice (SLACK_RETRY_INTERVALS=1,1) before the fallback.
            assert slack.attempts() == 3
            assert len(sink.to("ops@example.com")) == 2, "the email handler delivered each event once"
            assert len(rows(sqlite_url, "select event_id from sms_events")) == 2
            assert "slack" in fallback["Subject"] and "Slack answered 500" in fallback.get_content()
            [job] = wait_for(lambda: failed(queue_for(redis, "smshooks")), timeout=15)
            assert (job.handler, job.attempts, len(job.event_ids)) == ("slack", 3, 2)
            assert job.error.startswith("handlers.slack.SlackDeliveryError: Slack answered 500")

            listed = smshooks("failed", env=env)
            assert listed.returncode == 0 and job.id in listed.stdout and "attempts: 3" in listed.stdout

            slack.default = 200  # Slack is back
            replayed = smshooks("replay", "--handler", "slack", "--all", env=env)
            assert replayed.returncode == 0, replayed.stderr
            assert f"replayed {job.id}" in replayed.stdout
            again = smshooks("replay", job.id, env=env)  # a second replay of the same job is refused
            assert again.returncode == 1 and f"no failed handler job {job.id!r}" in again.stderr

            queue = queue_for(redis, "smshooks")
            wait_for(lambda: queue.fetch_job(job.id).get_status() == JobStatus.FINISHED, timeout=30)
        assert len(slack.delivered()) == 2
        assert sorted(b["text"].split(":")[0] for b in slack.delivered()) == [
            "SMS 201 to +61111222333",
            "SMS 202 to +61111222333",
        ]
        assert len(sink.to("fallback@example.com")) == 1 and len(sink.to("ops@example.com")) == 2
        assert failed(queue_for(redis, "smshooks")) == []
    assert "handlers: database, email, slack" in worker.stdout.read()


def test_cli_errors_are_one_clear_line_and_non_zero(redis, redis_server):
    env = process_env({"REDIS_URL": redis_server.url, "HANDLERS": "database,nope"})
    shown = smshooks("handlers", env=env)
    assert shown.returncode == 1 and "nope" in shown.stdout and "unknown handler 'nope'" in shown.stdout
    missing = smshooks("replay", "handle-x-0", env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "smshooks: no failed handler job 'handle-x-0'; `smshooks failed` lists them"
    both = smshooks("replay", env=env)
    assert both.returncode == 1 and both.stderr.count("\n") == 1
    down = smshooks("failed", env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 1 and down.stderr.startswith("smshooks: cannot reach Redis")


def test_handlers_command_reports_a_fallback_that_cannot_start(redis, redis_server):
    env = process_env({"REDIS_URL": redis_server.url, "HANDLERS": "database", "FALLBACK_EMAIL_TO": "ops@example.com"})
    shown = smshooks("handlers", env=env)  # no SMTP_URL: the worker could not send the fallback email
    assert shown.returncode == 1 and "fallback: BROKEN" in shown.stdout and "SMTP_URL" in shown.stdout
