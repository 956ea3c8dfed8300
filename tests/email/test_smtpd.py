"""`smshooks smtpd` as a real process, spoken to with smtplib: the same rows as the webhook, refusals, 451."""

from __future__ import annotations

import smtplib
import socket
import subprocess

import pytest

from handlers.database import init_db
from tests.conftest import SECRET, free_port, process_env, run_worker, venv_bin, wait_for
from tests.email_samples import RECEIPT_FIELDS, REDOXYGEN_RECEIPT, redoxygen_reply_alternative
from tests.processes import rows, running
from tests.webhook_cases import JSON
from webhooks import create_app
from webhooks.config import ConfigError
from webhooks.email.smtpd import SmtpdSettings

RECIPIENT = "sms-replies@hooks.example.com"
LIMIT = 20_000
EVENT_COLUMNS = (
    "event_id, provider, kind, status, final, message_id, recipient, sender, text, provider_status, "
    "description, occurred_at, raw"
)


def smtpd(port: int, redis_url: str) -> tuple[list[str], dict[str, str]]:
    env = process_env(
        {
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": SECRET,
            "SMTPD_HOST": "127.0.0.1",
            "SMTPD_PORT": str(port),
            "SMTPD_RECIPIENTS": f"{RECIPIENT},@other.example.com",
            "INBOUND_EMAIL_MAX_BYTES": str(LIMIT),
        }
    )
    return [venv_bin("smshooks"), "smtpd"], env


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    def listening():
        assert proc.poll() is None, f"smtpd exited: {proc.stdout.read()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(listening, timeout=30)


@pytest.fixture
def server(redis_server, redis):
    port = free_port()
    command, env = smtpd(port, redis_server.url)
    with running(command, env=env) as [proc]:
        wait_listening(port, proc)
        yield port


def send(port: int, raw: bytes, to: str = RECIPIENT) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail("noreply@redoxygen.net", [to], raw)


def test_receipt_over_smtp_is_the_same_row_as_the_webhook_receipt(server, env, redis, tmp_path):
    send(server, REDOXYGEN_RECEIPT)
    run_worker(env)
    by_email = rows(env["DATABASE_URL"], f"SELECT {EVENT_COLUMNS} FROM sms_events")
    assert len(by_email) == 1 and by_email[0][1:4] == ("redoxygen", "receipt", "delivered")

    # The same receipt posted as a callback, after the email: acknowledged as a duplicate, no second row.
    client = create_app(env).test_client()
    form = {"Messages.1." + k: v for k, v in RECEIPT_FIELDS.items()}
    late = client.post(f"/redoxygen/receipt?token={SECRET}", data=form, headers=JSON).get_json()
    assert (late["accepted"], late["duplicates"], late["event_ids"]) == (0, 1, [by_email[0][0]])

    # And posted alone into a fresh database: the very same row (times of receipt aside).
    webhook_db = f"sqlite:///{tmp_path / 'webhook.db'}"
    init_db(webhook_db)
    redis.flushall()
    webhook_env = {**env, "DATABASE_URL": webhook_db}
    response = create_app(webhook_env).test_client().post(f"/redoxygen/receipt?token={SECRET}", data=RECEIPT_FIELDS)
    assert response.status_code == 200, response.data
    run_worker(webhook_env)
    assert rows(webhook_db, f"SELECT {EVENT_COLUMNS} FROM sms_events") == by_email
    message_columns = "provider, message_id, recipient, status, final, provider_status, status_at"
    assert rows(webhook_db, f"SELECT {message_columns} FROM sms_messages") == rows(
        env["DATABASE_URL"], f"SELECT {message_columns} FROM sms_messages"
    )


def test_reply_over_smtp_reaches_the_database(server, env):
    send(server, redoxygen_reply_alternative("Oui, à demain"), to="Anyone@Other.Example.com")
    run_worker(env)
    [(kind, sender, text, raw)] = rows(env["DATABASE_URL"], "SELECT kind, sender, text, raw FROM sms_events")
    assert (kind, sender, text) == ("reply", "+61409000000", "Oui, à demain")
    assert SECRET not in raw
    assert rows(env["DATABASE_URL"], "SELECT status FROM sms_messages") == [("replied",)]


def test_other_recipients_are_refused_at_rcpt(server, redis):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(server, REDOXYGEN_RECEIPT, to="postmaster@elsewhere.example.net")
    assert refused.value.recipients["postmaster@elsewhere.example.net"][0] == 550
    assert redis.llen("smshooks:inbox") == 0


def test_size_limit(server, redis):
    too_big = REDOXYGEN_RECEIPT + (b"x" * 70 + b"\r\n") * (LIMIT // 72 + 1)  # lines: SMTP caps a line at 1000
    with smtplib.SMTP("127.0.0.1", server, timeout=30) as client:
        client.ehlo()
        assert int(client.esmtp_features["size"]) == LIMIT
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE declared in MAIL FROM
            client.sendmail("noreply@redoxygen.net", [RECIPIENT], too_big)
        assert refused.value.smtp_code == 552
        # A client that does not declare the size is stopped at the end of DATA.
        client.rset()
        client.mail("noreply@redoxygen.net")
        client.rcpt(RECIPIENT)
        code, _ = client.data(too_big)
        assert code == 552
    assert redis.llen("smshooks:inbox") == 0


def test_redis_down_is_451_so_the_sender_retries():
    port = free_port()
    command, env = smtpd(port, f"redis://127.0.0.1:{free_port()}/0")
    with running(command, env=env) as [proc]:
        wait_listening(port, proc)
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(port, REDOXYGEN_RECEIPT)
        assert failed.value.smtp_code == 451


def test_smtpd_refuses_to_start_without_recipients():
    result = subprocess.run(
        [venv_bin("smshooks"), "smtpd"],
        env=process_env({"SMTPD_RECIPIENTS": ""}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SMTPD_RECIPIENTS" in result.stderr


@pytest.mark.parametrize("value", ["", "not-an-address"])
def test_recipient_setting_is_checked(value):
    with pytest.raises(ConfigError, match="SMTPD_RECIPIENTS"):
        SmtpdSettings.from_env({"SMTPD_RECIPIENTS": value})
