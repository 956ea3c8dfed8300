"""slack, email and log against real servers: what they send, rate limits, escaping, header safety."""

from __future__ import annotations

import io
import json
import smtplib
from datetime import datetime, timezone

import pytest

from handlers.log import LogHandler
from handlers.mail import EmailHandler
from handlers.slack import SlackDeliveryError, SlackHandler
from tests.local_services import slack_stand_in, smtp_server
from webhooks.events import Event, Kind, Status

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


def reply(text: str, message_id: str = "123") -> Event:
    return Event(
        provider="redoxygen",
        kind=Kind.REPLY,
        status=Status.RECEIVED,
        final=True,
        message_id=message_id,
        sender="+61409000000",
        text=text,
        received_at=T0,
    )


def failed_receipt(message_id: str = "124") -> Event:
    return Event(
        provider="redoxygen",
        kind=Kind.RECEIPT,
        status=Status.FAILED,
        final=True,
        message_id=message_id,
        recipient="+61111222333",
        provider_status="2015",
        description="Number unreachable",
        received_at=T0,
    )


def all_text(blocks: list[dict]) -> str:
    return json.dumps(blocks)


# --- slack -------------------------------------------------------------------------------------


def test_slack_message_shows_status_number_message_id_text_and_provider():
    with slack_stand_in() as slack:
        SlackHandler.from_env({"SLACK_WEBHOOK_URL": slack.url}).handle_batch(
            [reply("Yes, see you at 10"), failed_receipt()]
        )
        [first, second] = slack.delivered()
    assert first["text"] == "Reply from +61409000000 to SMS 123"
    for expected in ("received", "+61409000000", "123", "redoxygen", "Yes, see you at 10"):
        assert expected in all_text(first["blocks"])
    for expected in ("failed", "+61111222333", "124", "Number unreachable"):
        assert expected in all_text(second["blocks"])


def test_slack_reply_text_with_markup_and_newlines_is_escaped_not_interpreted():
    text = "<!channel> Tom & Jerry <https://evil.example|click>\nline two *bold*"
    with slack_stand_in() as slack:
        SlackHandler.from_env({"SLACK_WEBHOOK_URL": slack.url}).handle(reply(text))
        [body] = slack.delivered()
    [quoted] = [b for b in body["blocks"] if b["type"] == "section" and "text" in b and "line two" in b["text"]["text"]]
    assert quoted["text"]["text"] == (
        "&lt;!channel&gt; Tom &amp; Jerry &lt;https://evil.example|click&gt;\nline two *bold*"
    )
    assert quoted["text"]["verbatim"] is True
    for block in body["blocks"]:
        for part in [block.get("text", {})] + block.get("fields", []) + block.get("elements", []):
            assert "<" not in part.get("text", "") and ">" not in part.get("text", "")


def test_slack_long_reply_is_cut_below_slacks_limit_without_splitting_an_entity():
    with slack_stand_in() as slack:
        SlackHandler.from_env({"SLACK_WEBHOOK_URL": slack.url}).handle(reply("a&" * 3000))
        [body] = slack.delivered()
    [quoted] = [b for b in body["blocks"] if b.get("text", {}).get("verbatim")]
    assert len(quoted["text"]["text"]) <= 3000
    assert quoted["text"]["text"].endswith("&amp;…") or quoted["text"]["text"].endswith("a…")


def test_slack_429_is_retried_after_retry_after():
    with slack_stand_in() as slack:
        slack.script = [(429, {"Retry-After": "1"})]
        SlackHandler.from_env({"SLACK_WEBHOOK_URL": slack.url}).handle(reply("hi"))
        assert slack.attempts() == 2 and len(slack.delivered()) == 1
        assert slack.requests[1]["at"] - slack.requests[0]["at"] >= 1.0


def test_slack_long_retry_after_goes_back_to_rq_instead_of_blocking_the_worker():
    with slack_stand_in() as slack:
        slack.script = [(429, {"Retry-After": "600"})]
        with pytest.raises(SlackDeliveryError, match="Retry-After: 600"):
            SlackHandler.from_env({"SLACK_WEBHOOK_URL": slack.url}).handle(reply("hi"))
        assert slack.attempts() == 1


def test_slack_500_raises_so_the_job_is_retried():
    with slack_stand_in() as slack:
        slack.default = 500
        with pytest.raises(SlackDeliveryError, match="500"):
            SlackHandler.from_env({"SLACK_WEBHOOK_URL": slack.url}).handle(reply("hi"))


@pytest.mark.parametrize("url", ["", "hooks.slack.com/services/T/B/secretpart", "ftp://x/secretpart"])
def test_slack_bad_url_is_refused_without_echoing_it(url):
    with pytest.raises(ValueError, match="SLACK_WEBHOOK_URL must be an https://") as err:
        SlackHandler.from_env({"SLACK_WEBHOOK_URL": url})
    assert "secretpart" not in str(err.value)


# --- email -------------------------------------------------------------------------------------


def email_env(url: str) -> dict[str, str]:
    return {"SMTP_URL": url, "EMAIL_FROM": "smshooks@example.com", "EMAIL_TO": "ops@example.com, boss@example.com"}


def test_email_subject_says_what_happened_and_body_is_plain_text():
    with smtp_server() as (sink, url):
        EmailHandler.from_env(email_env(url)).handle_batch([reply("Yes, see you at 10"), failed_receipt()])
        [(rcpts, first), (_, second)] = sink.messages
    assert sorted(rcpts) == ["boss@example.com", "ops@example.com"]
    assert first["Subject"] == "Reply from +61409000000 to SMS 123"
    assert first["From"] == "smshooks@example.com"
    assert first.get_content_type() == "text/plain"
    assert "Yes, see you at 10" in first.get_content()
    assert second["Subject"] == "SMS 124 to +61111222333 failed"
    assert "Number unreachable" in second.get_content()


def test_email_header_injection_is_impossible():
    hostile = reply("hi", message_id="123\r\nBcc: victim@example.com\r\nX-Evil: 1")
    with smtp_server() as (sink, url):
        EmailHandler.from_env(email_env(url)).handle(hostile)
        [(rcpts, message)] = sink.messages
    assert "victim@example.com" not in rcpts
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["Subject"] == "Reply from +61409000000 to SMS 123 Bcc: victim@example.com X-Evil: 1"


def test_email_refuses_to_send_a_password_without_tls():
    with smtp_server() as (sink, url):
        handler = EmailHandler.from_env(email_env(url.replace("smtp://", "smtp://user:pa55word@")))
        with pytest.raises(smtplib.SMTPNotSupportedError, match="does not offer STARTTLS") as err:
            handler.handle(reply("hi"))
        assert "pa55word" not in str(err.value)
        assert sink.messages == []


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "SMTP_URL must be set"),
        ({"SMTP_URL": "http://user:pa55word@host"}, "SMTP_URL must look like smtp://"),
        ({"SMTP_URL": "smtp://host", "EMAIL_TO": ""}, "EMAIL_TO must name at least one address"),
        ({"SMTP_URL": "smtp://host", "EMAIL_TO": "ops@example.com\r\nBcc: x@y"}, "EMAIL_TO must be comma-separated"),
    ],
)
def test_email_bad_settings_are_named(env, message):
    with pytest.raises(ValueError, match=message) as err:
        EmailHandler.from_env(env)
    assert "pa55word" not in str(err.value)


def test_smtps_url_is_read_with_its_port_and_credentials():
    handler = EmailHandler.from_env(
        {"SMTP_URL": "smtps://me%40x.com:p%2Fw@mail.example.com", "EMAIL_TO": "ops@example.com"}
    )
    smtp = handler.smtp
    assert (smtp.implicit_tls, smtp.host, smtp.port, smtp.user, smtp.password) == (
        True,
        "mail.example.com",
        465,
        "me@x.com",
        "p/w",
    )


# --- log ---------------------------------------------------------------------------------------


def test_log_writes_one_json_line_per_event():
    out = io.StringIO()
    LogHandler(out).handle_batch([reply("two\nlines"), failed_receipt()])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert (first["kind"], first["status"], first["text"], first["sender"]) == (
        "reply",
        "received",
        "two\nlines",
        "+61409000000",
    )
    assert "raw" not in first and json.loads(lines[1])["provider_status"] == "2015"
