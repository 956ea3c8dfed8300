"""Heroku Key-Value Store, for real: a redis-server that speaks only TLS, self-signed, with a password.

With REDIS_SSL_CERT_REQS=none every process works over it (gunicorn, `smshooks worker` and RQ's
scheduler, the CLI, smtpd, `smshooks run`); without it each says the certificate was refused and
names the setting, at once, instead of answering 200 or hanging.
"""

from __future__ import annotations

import smtplib
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import requests
from rq.job import JobStatus

from handlers.database import init_db
from tests.conftest import SECRET, free_port, process_env, venv_bin, wait_for
from tests.email_samples import REDOXYGEN_RECEIPT
from tests.processes import WORKER, gunicorn, rows, running, wait_until_up
from tests.redoxygen_samples import MESSAGE_1
from tests.tls_redis import PASSWORD, TlsRedisServer, tls_redis
from webhooks.pipeline.queueing import INBOX, queue_for

REFUSED = "the TLS certificate of Redis failed verification (self-signed certificate)"
FIX = "set REDIS_SSL_CERT_REQS=none"


@pytest.fixture(scope="module")
def kvs(tmp_path_factory: pytest.TempPathFactory):
    with tls_redis(tmp_path_factory.mktemp("kvs")) as server:
        yield server


@pytest.fixture
def kvs_client(kvs: TlsRedisServer):
    client = kvs.client()
    client.flushall()
    return client


def heroku_env(kvs: TlsRedisServer, **extra: str) -> dict[str, str]:
    return process_env({"REDIS_URL": kvs.url, "WEBHOOK_SECRET": SECRET, **extra})


class Output(list):
    """The lines a process prints, read as they come: a test can wait for one while the process runs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__()
        self.reader = threading.Thread(target=lambda: self.extend(proc.stdout), daemon=True)
        self.reader.start()

    def whole(self) -> str:
        """Everything, once the process has exited."""
        self.reader.join(timeout=15)
        return "".join(self)


def smshooks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([venv_bin("smshooks"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_receipt_goes_end_to_end_over_tls_with_the_setting(kvs, kvs_client, sqlite_url):
    init_db(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = heroku_env(kvs, DATABASE_URL=sqlite_url, REDIS_SSL_CERT_REQS="none")
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        receipt = requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=10)
        assert receipt.status_code == 200 and "<RESULT>000</RESULT>" in receipt.text
        wait_for(lambda: rows(sqlite_url, "select count(*) from sms_events") == [(1,)], timeout=20)
        # RQ's scheduler runs in a process the worker forks, on a client rebuilt from the worker's
        # pool: only it moves a scheduled job to the queue, so a finished one proves it speaks TLS.
        queue = queue_for(kvs_client, "smshooks")
        scheduled = queue.enqueue_in(timedelta(seconds=1), "webhooks.pipeline.jobs.dispatch")
        wait_for(lambda: scheduled.get_status(refresh=True) == JobStatus.FINISHED, timeout=20)
        worker = Output(procs[1])
    assert rows(sqlite_url, "select kind, status, message_id from sms_events") == [("receipt", "delivered", "123")]
    assert "Redis unavailable" not in worker.whole() and "Traceback" not in worker.whole()


def test_without_the_setting_web_and_worker_name_the_certificate_and_the_setting(kvs, kvs_client, sqlite_url):
    init_db(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = heroku_env(kvs, DATABASE_URL=sqlite_url)  # REDIS_SSL_CERT_REQS unset: required
    with running(gunicorn(port), WORKER, env=env) as procs:
        web_lines, worker_lines = Output(procs[0]), Output(procs[1])

        def answering():
            assert all(p.poll() is None for p in procs), "".join(web_lines + worker_lines)[-3000:]
            try:
                return [requests.get(f"{base}/healthz", timeout=5)]  # a list: a 503 Response is falsy
            except requests.RequestException:
                return None

        [health] = wait_for(answering, timeout=60)
        assert health.status_code == 503
        assert REFUSED in health.json()["redis"] and FIX in health.json()["redis"]

        started = time.monotonic()
        html = requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=20)
        elapsed = time.monotonic() - started
        as_json = requests.post(
            f"{base}/redoxygen/receipt?token={SECRET}",
            json=MESSAGE_1,
            headers={"Accept": "application/json"},
            timeout=20,
        )
        assert html.status_code == as_json.status_code == 503  # never a 200 for what was not stored
        assert elapsed < 10, f"the 503 took {elapsed:.1f}s"  # generous: it is refused at the handshake
        assert html.headers["Retry-After"] and "<RESULT>" in html.text
        for body in (html.text, as_json.json()["error"]):
            assert REFUSED in body and FIX in body and PASSWORD not in body

        wait_for(lambda: any("Redis unavailable" in line for line in worker_lines), timeout=30)
        assert all(p.poll() is None for p in procs), "a refused certificate must not stop the processes"
    output = web_lines.whole() + worker_lines.whole()
    web_log = [line for line in web_lines if "answering 503" in line]
    worker_log = [line for line in worker_lines if "Redis unavailable" in line]
    for found in (web_log, worker_log):
        assert found and all(REFUSED in line and FIX in line for line in found), found
    assert PASSWORD not in output
    assert kvs_client.llen(INBOX) == 0


def test_the_cli_works_with_the_setting_and_says_what_is_wrong_without_it(kvs, kvs_client):
    env = heroku_env(kvs, REDIS_SSL_CERT_REQS="none")
    listed = smshooks("failed", env=env)
    assert (listed.returncode, listed.stdout.strip()) == (0, "no failed handler jobs"), listed.stderr
    replayed = smshooks("replay", "--all", env=env)
    assert replayed.returncode == 0 and "0 job(s) put back on the 'smshooks' queue" in replayed.stdout

    refused = smshooks("failed", env=heroku_env(kvs))
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"smshooks: cannot reach Redis at REDIS_URL (ConnectionError: {REFUSED}: " + (
        f"if it is self-signed, as on Heroku Key-Value Store, {FIX})"
    )
    bad = smshooks("failed", env=heroku_env(kvs, REDIS_SSL_CERT_REQS="no"))
    assert bad.returncode == 2 and "REDIS_SSL_CERT_REQS must be one of required, optional, none" in bad.stderr


def smtpd_env(kvs: TlsRedisServer, port: int, **extra: str) -> dict[str, str]:
    return heroku_env(
        kvs, SMTPD_HOST="127.0.0.1", SMTPD_PORT=str(port), SMTPD_RECIPIENTS="sms@hooks.example.com", **extra
    )


@pytest.mark.parametrize("cert_reqs", ["none", None])
def test_smtpd_stores_over_tls_with_the_setting_and_answers_451_without_it(kvs, kvs_client, cert_reqs):
    port = free_port()
    extra = {"REDIS_SSL_CERT_REQS": cert_reqs} if cert_reqs else {}
    with running([venv_bin("smshooks"), "smtpd"], env=smtpd_env(kvs, port, **extra)) as [proc]:
        lines = Output(proc)

        def connected():
            assert proc.poll() is None, "".join(lines)
            try:
                return smtplib.SMTP("127.0.0.1", port, timeout=10)
            except OSError:
                return None

        with wait_for(connected, timeout=30) as client:
            if cert_reqs:
                assert client.sendmail("noreply@redoxygen.net", ["sms@hooks.example.com"], REDOXYGEN_RECEIPT) == {}
            else:
                with pytest.raises(smtplib.SMTPDataError) as refused:
                    client.sendmail("noreply@redoxygen.net", ["sms@hooks.example.com"], REDOXYGEN_RECEIPT)
                assert refused.value.smtp_code == 451
    assert kvs_client.llen(INBOX) == (1 if cert_reqs else 0)
    if not cert_reqs:
        assert f"answering 451: ConnectionError: {REFUSED}" in lines.whole() and FIX in lines.whole()


def test_smshooks_run_given_a_tls_url(kvs, kvs_client, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    database = f"sqlite:///{tmp_path / 'run.db'}"
    env = heroku_env(kvs, PORT=str(port), HOST="127.0.0.1", SMSHOOKS_HOME=str(home), DATABASE_URL=database)

    # Without the setting: a setting to change, said before anything starts (exit 2, as for a bad setting).
    result = subprocess.run(
        [venv_bin("smshooks"), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"smshooks: {REFUSED}: if it is self-signed, as on Heroku Key-Value Store, {FIX}"

    with running([venv_bin("smshooks"), "run"], env={**env, "REDIS_SSL_CERT_REQS": "none"}, cwd=tmp_path) as [proc]:
        wait_until_up(base, [proc])
        assert requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=10).status_code == 200
        wait_for(lambda: rows(database, "select count(*) from sms_events") == [(1,)], timeout=20)
        proc.terminate()
        output, _ = proc.communicate(timeout=40)
    assert f"Redis: rediss://:***@127.0.0.1:{kvs.port}/0" in output
    assert PASSWORD not in output
