"""The console's Messages and Events pages, signed in, over callbacks stored by a real worker (real Redis, SQLite)."""

from __future__ import annotations

import html
import re

import pytest

from handlers.database import DatabaseHandler
from tests.conftest import SECRET, run_worker
from tests.console.conftest import CONSOLE, sign_in
from tests.stored_events import receipt
from webhooks import create_app
from webhooks.events import Status

FLAKY = "tests.support_handlers:Flaky"


@pytest.fixture
def pages_env(env):
    return {
        **env,
        **CONSOLE,
        "PHONE_REGION": "AU",
        "HANDLERS": f"database,{FLAKY}",
        "FLAKY_EVENTS": "reply",  # the flaky handler is given replies only
        "FLAKY_RETRY_INTERVALS": "none",  # its first failure is final: a failed job in the registry
    }


@pytest.fixture
def signed_in(pages_env):
    client = create_app(pages_env).test_client()
    assert sign_in(client).status_code == 302
    return client


@pytest.fixture
def delivered_and_answered(pages_env, signed_in, redis):
    """SMS 123 to 0409 000 000: its receipt and a reply stored by a worker; the reply's flaky job failed."""
    redis.set("test:flaky:failures", 100)
    receipt_fields = {"SMSId": "123", "DestTn": "0409 000 000", "Result": "0000", "ResultText": "Delivered"}
    assert signed_in.post(f"/redoxygen/receipt?token={SECRET}", data=receipt_fields).status_code == 200
    reply_fields = {"SmsId": "123", "DestTN": "61409000000", "ReplyText": "<b>Yes</b>, see you", "EmailId": "9"}
    assert signed_in.post(f"/redoxygen/reply?token={SECRET}", data=reply_fields).status_code == 200
    run_worker(pages_env)


def text_of(answer) -> str:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def test_a_message_is_found_by_its_phone_typed_nationally(signed_in, delivered_and_answered):
    page = text_of(signed_in.get("/console/messages?q=0409+000+000"))
    assert 'href="/console/messages/redoxygen/123"' in page
    assert "+61409000000" in page  # in full: the page is signed-in only
    assert "replied" in page
    assert 'href="/console/messages/redoxygen/123"' in text_of(signed_in.get("/console/messages?q=123"))
    assert "No message matches" in text_of(signed_in.get("/console/messages?q=0499+999+999"))


def test_the_timeline_has_every_event_and_which_handlers_got_it(signed_in, delivered_and_answered):
    page = text_of(signed_in.get("/console/messages/redoxygen/123"))
    rows = re.findall(r"<tr id=\"[^\"]+\">(.*?)</tr>", page, re.S)
    assert len(rows) == 2
    assert "delivered" in rows[0] and "0000" in rows[0] and "Delivered" in rows[0]
    assert "database: given" in rows[0] and FLAKY not in rows[0]  # FLAKY_EVENTS=reply
    # The reply's text, escaped, never as markup; its raw fields as JSON text.
    assert "&lt;b&gt;Yes&lt;/b&gt;, see you" in rows[1] and "<b>Yes</b>" not in page
    assert "database: given" in rows[1] and f"{FLAKY}: failed <code>handle-" in rows[1]
    assert re.search(r"<pre>\{.*ReplyText", rows[1], re.S)
    assert "_EVENTS</code> takes the event" in page  # the page says what "got it" means
    assert 'class="figure status">replied<' in page
    assert signed_in.get("/console/messages/redoxygen/nope").status_code == 404


def test_the_overdue_flag_is_shown(pages_env, signed_in):
    from datetime import datetime, timezone

    from webhooks.events import Event, Kind

    handler = DatabaseHandler(pages_env["DATABASE_URL"])
    at = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    handler.handle_batch([receipt("late", Status.SENT, 1)])
    overdue = Event(provider="smsc", kind=Kind.RECEIPT_OVERDUE, status=Status.SENT, message_id="late", received_at=at)
    handler.handle_batch([overdue])
    handler.close()
    page = text_of(signed_in.get("/console/messages/smsc/late"))
    assert "overdue" in page and "since 2026-12-01 09:00:00 UTC" in page


def test_events_filters_and_paging_by_cursor(pages_env, signed_in):
    handler = DatabaseHandler(pages_env["DATABASE_URL"])
    handler.handle_batch([receipt(f"m{i:03}", Status.SENT if i % 3 else Status.DELIVERED, i) for i in range(120)])
    handler.close()
    first = text_of(signed_in.get("/console/events"))
    ids = re.findall(r">(m\d{3})</a>", first)
    assert ids == [f"m{i:03}" for i in range(119, 69, -1)]  # 50, newest first
    older = html.unescape(re.search(r'class="older" href="([^"]+)"', first).group(1))
    second = text_of(signed_in.get(older))
    assert re.findall(r">(m\d{3})</a>", second) == [f"m{i:03}" for i in range(69, 19, -1)]
    third = text_of(signed_in.get(html.unescape(re.search(r'class="older" href="([^"]+)"', second).group(1))))
    assert re.findall(r">(m\d{3})</a>", third) == [f"m{i:03}" for i in range(19, -1, -1)]
    assert 'class="older"' not in third
    delivered = text_of(signed_in.get("/console/events?status=delivered&kind=receipt&provider="))
    assert re.findall(r">(m\d{3})</a>", delivered) == [f"m{i:03}" for i in range(117, -1, -3)]
    assert '<option value="delivered" selected>' in delivered and 'class="older"' not in delivered
    sent = text_of(signed_in.get("/console/events?status=sent"))
    every_sent = [f"m{i:03}" for i in range(119, -1, -1) if i % 3]
    assert re.findall(r">(m\d{3})</a>", sent) == every_sent[:50]
    # The filter stays on the `older` link.
    older_sent = html.unescape(re.search(r'class="older" href="([^"]+)"', sent).group(1))
    assert "status=sent" in older_sent
    assert re.findall(r">(m\d{3})</a>", text_of(signed_in.get(older_sent))) == every_sent[50:]
    assert text_of(signed_in.get("/console/events?provider=ogangi")).count("No events") == 1
    assert signed_in.get("/console/events?status=lost").status_code == 400
    assert signed_in.get("/console/events?before=abc").status_code == 400


def test_without_the_database_handler_the_pages_say_so(pages_env):
    client = create_app({**pages_env, "HANDLERS": "log"}).test_client()
    assert sign_in(client).status_code == 302
    for path in ("/console/messages?q=123", "/console/events", "/console/messages/smsc/1"):
        page = text_of(client.get(path))
        assert "database handler" in page and "<table" not in page


def test_the_pages_need_a_signed_in_user(pages_env, delivered_and_answered):
    client = create_app(pages_env).test_client()
    for path in ("/console/messages?q=0409000000", "/console/messages/redoxygen/123", "/console/events"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]
        assert "+61409000000" not in answer.get_data(as_text=True)
