"""The rules that keep secrets and phone numbers out of Sentry reports (webhooks/telemetry/redaction.py)."""

from __future__ import annotations

import pytest

from webhooks.telemetry.redaction import FILTERED, scrub_text, scrub_value, secrets_from_env


@pytest.mark.parametrize(
    "text, expected",
    [
        ("redis://:p4ssw0rd-long@redis.example.com:6379", "redis://:***@redis.example.com:6379"),
        ("smtp://mailer:pa$$word@mail.example.com", "smtp://mailer:***@mail.example.com"),
        ("GET /cb?access_token=ya29.A0xyz&x=1", f"GET /cb?access_token={FILTERED}&x=1"),
        ('{"client_secret": "abcDEF123"}', f'{{"client_secret": "{FILTERED}"}}'),
        ("Authorization: Bearer eyJhbGciOi.J9", f"Authorization: Bearer {FILTERED}"),
        ("from +61409000123 at", "from +********123 at"),
        ("DestTN=61409000123&x", "DestTN=********123&x"),
        ("call 0409000123.", "call *******123."),
        ("sender '+33612345678'", "sender '+********678'"),
    ],
)
def test_text_rules(text, expected):
    assert scrub_text(text, ()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-09-20T04:39:13.819Z",
        "at 1732364061 and 1732364061123 (Unix times)",
        "redoxygen-2a2c9f5ed260502842c00fedf60abb24",
        "handle-database-123456789012abcd",
        "550e8400-e29b-41d4-a716-446655440000 12345678-1234-1234-1234-123456789012",
        "a 16-digit 1234567890123456 card-like run and 3.14159265358979",
        "port 6379, 1234567 (7 digits)",
    ],
)
def test_ids_and_times_are_left_alone(text):
    assert scrub_text(text, ()) == text


def test_configured_secrets_go_first_and_whole():
    secrets = secrets_from_env(
        {
            "SMTP_PASSWORD": "smtp-Pass-123",
            "DATABASE_URL": "postgres://u:db-pw-4567@h/d",
            "WEBHOOK_SECRET": "one-secret-16-chars,two-secret-16-chars",
            "PORT": "8000",
            "API_TOKEN": "abc",
        }
    )
    assert set(secrets) == {"smtp-Pass-123", "db-pw-4567", "one-secret-16-chars", "two-secret-16-chars"}
    assert scrub_text("x smtp-Pass-123 two-secret-16-chars", secrets) == "x [secret] [secret]"


def test_sensitive_keys_and_header_pairs_are_filtered():
    event = {
        "request": {
            "headers": {"Authorization": "Basic eDp5", "Cookie": "s=1", "Accept": "*/*"},
            "cookies": {"session": "abc"},
        },
        "extra": {"pairs": [["Authorization", "Token abc"], ["X-Other", "ok"]], "DestTn": 61409000123},
        "timestamp": 1732364061.5,
    }
    scrubbed = scrub_value(event, ())
    assert scrubbed["request"]["headers"] == {"Authorization": FILTERED, "Cookie": FILTERED, "Accept": "*/*"}
    assert scrubbed["request"]["cookies"] == {"session": FILTERED}
    assert scrubbed["extra"]["pairs"] == [["Authorization", FILTERED], ["X-Other", "ok"]]
    assert scrubbed["extra"]["DestTn"] == "********123"
    assert scrubbed["timestamp"] == 1732364061.5


def test_logs_lose_every_configured_secret_not_only_the_webhook_secret(env, caplog):
    import logging

    from webhooks import create_app

    hook = "https://hooks.slack.com/services/T0001/B0002/s3cr3tS1ackP4th"
    create_app({**env, "SLACK_WEBHOOK_URL": hook, "SMTP_URL": "smtp://mailer:Sm7pPassw0rd@mail.example:587"})
    log = logging.getLogger("handlers.slack")
    with caplog.at_level(logging.INFO):
        log.warning("posting to %s failed; SMTP_URL smtp://mailer:Sm7pPassw0rd@mail.example:587", hook)
        try:
            raise RuntimeError(f"refused by {hook}")
        except RuntimeError:
            log.exception("handler failed")
    text = caplog.text
    assert "s3cr3tS1ackP4th" not in text and "Sm7pPassw0rd" not in text
    assert "[secret]" in text and "posting to" in text


def test_a_url_settings_query_credentials_are_secrets_but_not_its_other_values():
    from webhooks.telemetry.redaction import secrets_from_env

    env = {
        "FORWARD_URL": "https://crm.example/in?key=k-123456789,https://b.example/x?token=t-987654321&tenant=acme-corp",
        "DATABASE_URL": "postgresql://app:db-pw-123456@db/app?sslmode=require",
    }
    assert set(secrets_from_env(env)) == {"k-123456789", "t-987654321", "db-pw-123456"}
