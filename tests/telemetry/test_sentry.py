"""With SENTRY_DSN set, a failing handler is reported to Sentry, and the secret is not in the report."""

from __future__ import annotations

import base64

from tests.conftest import ROOT, SECRET, process_env, unique, venv_bin, wait_for
from tests.redoxygen_samples import REPLY
from tests.sentry_stand_in import SentryStandIn, error_events, sentry_stand_in
from webhooks import create_app


def test_failing_handler_is_reported_without_the_secret(env, redis):
    server, dsn = sentry_stand_in()
    try:
        client = create_app(env).test_client()
        assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
        worker_env = process_env(
            {
                **env,
                "HANDLERS": "tests.support_handlers:Leaky",
                "RETRY_INTERVALS": "none",
                "SENTRY_DSN": dsn,
                "SENTRY_ENVIRONMENT": "test",
            }
        )
        import subprocess

        result = subprocess.run(
            [venv_bin("smshooks"), "worker", "--burst"],
            env=worker_env,
            cwd=ROOT,
            timeout=60,
            capture_output=True,
            text=True,
        )
        logs = result.stdout + result.stderr
        assert "token=[secret] failed" in logs, logs[-3000:]  # the traceback is logged ...
        assert SECRET not in logs  # ... without the secret
        wait_for(lambda: any(b'"exception"' in body for body in SentryStandIn.received), timeout=10)
    finally:
        server.shutdown()
    reports = b"\n".join(SentryStandIn.received)
    assert b"ConnectionError" in reports and b'"environment":"test"' in reports.replace(b" ", b"")
    assert b"token=[secret]" in reports
    assert SECRET.encode() not in reports


SMTP_PASSWORD = "smtp-Pa55word-for-tests"


def test_final_failure_is_reported_once_with_job_context_and_nothing_secret(env, redis):
    server, dsn = sentry_stand_in()
    try:
        client = create_app(env).test_client()
        assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
        worker_env = process_env(
            {
                **env,
                "HANDLERS": "tests.support_handlers:Blabbing",
                "RETRY_INTERVALS": "0,0",
                "SENTRY_DSN": dsn,
                "SENTRY_ENVIRONMENT": "staging",
                "SENTRY_RELEASE": "abc123",
                "SMTP_PASSWORD": SMTP_PASSWORD,
            }
        )
        import subprocess

        result = subprocess.run(
            [venv_bin("smshooks"), "worker", "--burst"],
            env=worker_env,
            cwd=ROOT,
            timeout=90,
            capture_output=True,
            text=True,
        )
        assert int(redis.get("test:blabbing:attempts")) == 3, result.stderr[-3000:]  # first try + 2 retries
        wait_for(error_events, timeout=10)
    finally:
        server.shutdown()
    reports = error_events()
    assert len(reports) == 1, [r[:300] for r in reports]  # the final failure, not each attempt
    report = reports[0].replace(b" ", b"")
    assert b'"environment":"staging"' in report and b'"release":"abc123"' in report
    assert b'"handler":"tests.support_handlers:Blabbing"' in report  # the job's context: handler name ...
    assert b'"job_id":"handle-tests_support_handlers_Blabbing-' in report  # ... and job id (tag and rq-job extra)
    assert b"ConnectionError" in report
    everything = b"\n".join(SentryStandIn.received)
    for secret in (SECRET, SMTP_PASSWORD, "Hunter2-db-pw", "ya29.a0Af-xyz", "61409000000"):
        assert secret.encode() not in everything, secret
    assert b"+********000" in report  # the phone, masked but recognisable
    assert b"smtp://mailer:***@mail.example.com" in report


def test_web_error_is_reported_without_credentials_or_phone_numbers(env, redis):
    import sentry_sdk

    server, dsn = sentry_stand_in()
    try:
        app = create_app({**env, "SENTRY_DSN": dsn, "SENTRY_ENVIRONMENT": "test", "SMTP_PASSWORD": SMTP_PASSWORD})

        def boom():
            raise RuntimeError(f"upstream said no to +61409000123 with token={SECRET}; smtp {SMTP_PASSWORD}")

        app.add_url_rule("/boom", view_func=boom)
        auth = base64.b64encode(f"u:{SECRET}".encode()).decode()
        cookie = unique()  # made at run time: the report quotes this file's source lines
        response = app.test_client().get(
            f"/boom?token={SECRET}&DestTN=61409000123",
            headers={"Authorization": f"Basic {auth}", "Cookie": f"session={cookie}"},
        )
        assert response.status_code == 500 and response.get_json() == {"error": "internal error", "status": 500}
        sentry_sdk.flush(timeout=5)
        wait_for(error_events, timeout=10)
    finally:
        sentry_sdk.init()  # no DSN: later tests in this process send nothing
        server.shutdown()
    assert len(error_events()) == 1  # once, though Flask, logging and our error handler all see it
    everything = b"\n".join(SentryStandIn.received)
    assert b"RuntimeError" in everything
    for secret in (SECRET, SMTP_PASSWORD, auth, cookie, "61409000123"):
        assert secret.encode() not in everything, secret
    assert b"+********123" in everything
    assert b'"environment":"test"' in everything.replace(b" ", b"")
