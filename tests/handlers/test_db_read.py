"""The reader over the database handler's tables, on SQLite and PostgreSQL, with rows the real handler wrote."""

from __future__ import annotations

import pytest

from handlers.database import DatabaseHandler, init_db
from handlers.db_read import Reader
from tests.stored_events import receipt, reply
from webhooks.events import EVENT_SCHEMA, Status


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, sqlite_url):
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    init_db(url)
    return url


@pytest.fixture
def handler(url):
    h = DatabaseHandler(url)
    yield h
    h.close()


@pytest.fixture
def reader(url):
    r = Reader(url)
    yield r
    r.close()


def test_a_message_has_its_status_and_every_event_oldest_first_in_wire_form(handler, reader):
    events = [receipt("m1", Status.SENT, 1), receipt("m1", Status.DELIVERED, 2), receipt("m2", Status.SENT, 3)]
    handler.handle_batch(events[::-1])  # stored in any order, read in time order of storage
    handler.handle_batch([reply("m1", "yes <b>please</b>")])
    found = reader.message("smsc", "m1")
    assert found is not None
    assert found.status["status"] == "replied" and found.status["final"] is True
    assert found.status["recipient"] == "+61409000000"
    assert [(e["kind"], e["status"]) for e in found.events] == [
        ("receipt", "delivered"),
        ("receipt", "sent"),
        ("reply", "received"),
    ]
    # The same wire form the forward handler sends: EventSchema's dump of the event given to the handler.
    assert found.events[0] == EVENT_SCHEMA.dump(events[1])
    assert found.as_json()["events"][2]["text"] == "yes <b>please</b>"
    assert reader.message("smsc", "nope") is None
    assert reader.message("redoxygen", "m1") is None


def test_search_by_message_id_or_phone_as_typed_newest_first(handler, reader):
    handler.handle_batch([receipt("a1", Status.SENT, 1), receipt("a2", Status.DELIVERED, 2)])
    handler.handle_batch([receipt("b1", Status.SENT, 3, phone="+33612345678", provider="redoxygen")])
    handler.handle_batch([reply("a1", "stop")])
    assert [(f.provider, f.message_id) for f in reader.search("0409 000 000", "AU")] == [
        ("smsc", "a1"),  # its reply came last
        ("smsc", "a2"),
    ]
    assert [f.message_id for f in reader.search("+61409000000")] == ["a1", "a2"]
    assert [f.message_id for f in reader.search("06 12 34 56 78", "FR")] == ["b1"]
    found = reader.search(" b1 ")
    assert [(f.provider, f.message_id, f.status, f.recipient) for f in found] == [
        ("redoxygen", "b1", "sent", "+33612345678")
    ]
    assert found[0].last_event["provider_status"] == "code-sent"
    assert reader.search("0409 000 000") == []  # without PHONE_REGION a national number is not that phone
    assert reader.search("") == []
    assert len(reader.search("+61409000000", limit=1)) == 1


def test_latest_is_newest_first_filtered_and_paged(handler, reader):
    handler.handle_batch([receipt(f"m{i}", Status.SENT if i % 2 else Status.DELIVERED, i) for i in range(7)])
    handler.handle_batch([reply("m1", "hi")])
    page = reader.latest({}, limit=3)
    assert [e["message_id"] for e in page.events] == ["m1", "m6", "m5"] and page.more
    rest = reader.latest({}, before=page.ids[-1], limit=10)
    assert [e["message_id"] for e in rest.events] == ["m4", "m3", "m2", "m1", "m0"] and not rest.more
    assert [e["message_id"] for e in reader.latest({"status": "delivered"}).events] == ["m6", "m4", "m2", "m0"]
    assert [e["kind"] for e in reader.latest({"kind": "reply"}).events] == ["reply"]
    assert reader.latest({"provider": "redoxygen"}).events == []
    assert (
        reader.latest({"provider": "smsc", "kind": "receipt", "status": "sent"}, limit=2).ids
        == sorted(reader.latest({"kind": "receipt", "status": "sent"}).ids, reverse=True)[:2]
    )


def test_feed_is_in_the_order_stored_and_continues_after_the_cursor(handler, reader):
    handler.handle_batch([receipt(f"m{i}", Status.SENT, i) for i in range(5)])
    first = reader.feed({}, 0, 2)
    assert [e["message_id"] for e in first.events] == ["m0", "m1"] and first.more
    handler.handle_batch([receipt("m9", Status.DELIVERED, 9)])
    second = reader.feed({}, first.ids[-1], 10)
    assert [e["message_id"] for e in second.events] == ["m2", "m3", "m4", "m9"] and not second.more
    assert reader.feed({}, second.ids[-1], 10).events == []
    assert [e["message_id"] for e in reader.feed({"status": "delivered"}).events] == ["m9"]
    # A re-delivered batch stores nothing again, so the feed shows nothing again.
    handler.handle_batch([receipt("m9", Status.DELIVERED, 9)])
    assert reader.feed({}, second.ids[-1], 10).events == []


def test_odd_input_finds_nothing_and_never_fails(handler, reader):
    # PostgreSQL refuses NUL in text; the handler stored it replaced, and the reader looks it up the same way.
    handler.handle_batch([receipt("a\x00b", Status.SENT, 1)])
    found = reader.message("smsc", "a\x00b")
    assert found is not None and found.message_id == "a\ufffdb"
    assert reader.message("smsc\x00", "x" * 500) is None
    assert [f.message_id for f in reader.search("a\x00b")] == ["a\ufffdb"]
    assert reader.search("+\x00") == []
    assert reader.latest({"provider": "\x00"}).events == []


def test_a_database_at_0002_gets_the_reader_indexes_and_keeps_its_rows(sqlite_url):
    from alembic import command
    from sqlalchemy import inspect

    from handlers.database import make_engine
    from handlers.migrate import _config

    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0002")
    engine.dispose()
    old = DatabaseHandler(sqlite_url)
    old.handle_batch([receipt("m1", Status.SENT, 1)])
    old.close()
    init_db(sqlite_url)
    engine = make_engine(sqlite_url)
    names = {i["name"] for i in inspect(engine).get_indexes("sms_events")}
    engine.dispose()
    assert {"ix_sms_events_recipient", "ix_sms_events_sender", "ix_sms_events_kind_status_id"} <= names
    reader = Reader(sqlite_url)
    assert [f.message_id for f in reader.search("+61409000000")] == ["m1"]
    reader.close()
