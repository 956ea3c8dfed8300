"""The database handler on SQLite and PostgreSQL: idempotent inserts, statuses that never go backwards."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from handlers.database import PAGE, DatabaseHandler, init_db
from handlers.db_schema import sms_events, sms_messages
from webhooks.events import Event, Kind, Status

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def handler(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    init_db(url)
    h = DatabaseHandler(url)
    yield h
    h.close()


def receipt(message_id: str, status: Status, minutes: int, final: bool | None = None, code: str = "x") -> Event:
    return Event(
        provider="test",
        kind=Kind.RECEIPT,
        status=status,
        message_id=message_id,
        final=status in (Status.DELIVERED, Status.FAILED) if final is None else final,
        provider_status=f"{code}-{status.value}",
        recipient="+61409000000",
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0 + timedelta(minutes=minutes, seconds=1),
    )


def reply(message_id: str, text: str) -> Event:
    return Event(
        provider="test",
        kind=Kind.REPLY,
        status=Status.RECEIVED,
        final=True,
        message_id=message_id,
        sender="+61409000000",
        text=text,
        received_at=T0 + timedelta(hours=1),
        raw={"ReplyText": text},
    )


def message(h: DatabaseHandler, message_id: str) -> dict:
    with h.engine.connect() as conn:
        return dict(conn.execute(select(sms_messages).where(sms_messages.c.message_id == message_id)).mappings().one())


def count(h: DatabaseHandler) -> int:
    with h.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(sms_events)).scalar_one()


def test_batch_is_inserted_once_even_when_redelivered(handler):
    events = [receipt(str(n), Status.DELIVERED, n) for n in range(50)] + [reply("7", "yes")]
    handler.handle_batch(events)
    handler.handle_batch(events)  # an RQ job run twice (retry after an abandoned worker)
    handler.handle_batch(events[10:20])
    assert count(handler) == 51
    with handler.engine.connect() as conn:
        row = conn.execute(select(sms_events).where(sms_events.c.kind == "reply")).mappings().one()
    assert (row["sender"], row["text"], row["raw"]) == ("+61409000000", "yes", {"ReplyText": "yes"})


@pytest.mark.parametrize(
    "order",
    [
        ["sent", "delivered"],
        ["delivered", "sent"],
        ["queued", "delivered", "sent"],
        ["delivered", "queued", "sent"],
    ],
)
def test_status_never_moves_back_whatever_the_order(handler, order):
    minute = {"queued": 1, "sent": 2, "delivered": 3}
    for name in order:  # one batch each: the order of arrival across jobs
        handler.handle_batch([receipt("m1", Status(name), minute[name])])
    row = message(handler, "m1")
    assert (row["status"], row["final"]) == ("delivered", True)
    assert row["provider_status"] == "x-delivered"


def test_out_of_order_within_one_batch(handler):
    handler.handle_batch([receipt("m1", Status.DELIVERED, 3), receipt("m1", Status.SENT, 2)])
    assert message(handler, "m1")["status"] == "delivered"


def test_final_status_is_not_replaced_by_another_of_the_same_rank(handler):
    handler.handle_batch([receipt("m1", Status.FAILED, 3)])
    handler.handle_batch([receipt("m1", Status.DELIVERED, 4)])
    assert message(handler, "m1")["status"] == "failed"


def test_newer_status_of_the_same_rank_replaces_a_non_final_one(handler):
    handler.handle_batch([receipt("m1", Status.SENT, 2, code="a")])
    handler.handle_batch([receipt("m1", Status.SENT, 5, code="b")])
    handler.handle_batch([receipt("m1", Status.SENT, 4, code="c")])
    assert message(handler, "m1")["provider_status"] == "b-sent"


def test_unknown_never_hides_a_known_status(handler):
    handler.handle_batch([receipt("m1", Status.SENT, 2)])
    handler.handle_batch([receipt("m1", Status.UNKNOWN, 9)])
    assert message(handler, "m1")["status"] == "sent"
    assert count(handler) == 2, "the unknown event itself is still stored"


def test_reply_marks_the_message_replied(handler):
    handler.handle_batch([receipt("m1", Status.DELIVERED, 3)])
    handler.handle_batch([reply("m1", "yes")])
    handler.handle_batch([receipt("m1", Status.SENT, 2)])
    row = message(handler, "m1")
    assert (row["status"], row["recipient"]) == ("replied", "+61409000000")


def test_postgres_scheme_from_platforms_is_accepted():
    from webhooks.config import Settings

    assert (
        Settings.from_env({"DATABASE_URL": "postgres://u:p@db:5432/x"}).database_url
        == "postgresql+psycopg://u:p@db:5432/x"
    )
    assert Settings.from_env({"DATABASE_URL": "postgresql://u@db/x"}).database_url == "postgresql+psycopg://u@db/x"


def test_unsupported_database_is_refused_with_its_name():
    with pytest.raises(ValueError, match="mysql"):
        DatabaseHandler("mysql://root@localhost/test")


def test_nul_characters_do_not_poison_a_batch(handler):
    # PostgreSQL refuses NUL in text; one such reply must not fail the whole batch on every retry.
    events = [reply("m1", "bad\x00text"), receipt("m2", Status.DELIVERED, 1)]
    handler.handle_batch(events)
    with handler.engine.connect() as conn:
        texts = conn.execute(select(sms_events.c.text).where(sms_events.c.kind == "reply")).scalars().all()
    assert texts == ["bad\ufffdtext"]
    assert count(handler) == 2


def overdue(message_id: str, minutes: int, last: Status = Status.SENT) -> Event:
    """A receipt_overdue event as the receipt watchdog (webhooks/pipeline/watchdog.py) makes it."""
    from webhooks.pipeline.watchdog import overdue_event

    deadline = (T0 + timedelta(minutes=minutes)).timestamp()
    last_at = (T0 + timedelta(minutes=1)).timestamp()
    return overdue_event(f"test:{message_id}", deadline, f"{last.value} {last_at}", deadline + 1, 3600)


def test_overdue_is_stored_and_sets_overdue_since_without_moving_the_status(handler):
    handler.handle_batch([receipt("m1", Status.SENT, 1)])
    handler.handle_batch([overdue("m1", 61)])
    handler.handle_batch([overdue("m1", 61)])  # the same alert again: one row
    row = message(handler, "m1")
    assert (row["status"], row["final"], row["provider_status"]) == ("sent", False, "x-sent")
    assert row["overdue_since"].replace(tzinfo=timezone.utc) == T0 + timedelta(minutes=61)
    with handler.engine.connect() as conn:
        event = conn.execute(select(sms_events).where(sms_events.c.kind == "receipt_overdue")).mappings().one()
    assert (event["status"], event["final"], event["description"]) == (
        "sent",
        False,
        "no final status 60 min after `sent` at 2026-11-01T09:01:00+00:00",
    )
    assert count(handler) == 2


def test_a_final_status_clears_overdue_since(handler):
    handler.handle_batch([receipt("m1", Status.SENT, 1), overdue("m1", 61)])
    assert message(handler, "m1")["overdue_since"] is not None
    handler.handle_batch([receipt("m1", Status.SENT, 70)])  # not final: the alert stays
    assert message(handler, "m1")["overdue_since"] is not None
    handler.handle_batch([receipt("m1", Status.DELIVERED, 90)])
    row = message(handler, "m1")
    assert (row["status"], row["overdue_since"]) == ("delivered", None)


def test_an_alert_never_marks_a_final_message(handler):
    handler.handle_batch([receipt("m1", Status.DELIVERED, 2)])
    handler.handle_batch([overdue("m1", 61)])  # raced with the final status
    handler.handle_batch([receipt("m2", Status.SENT, 1), overdue("m2", 61), receipt("m2", Status.FAILED, 62)])
    assert message(handler, "m1")["overdue_since"] is None
    assert (message(handler, "m2")["status"], message(handler, "m2")["overdue_since"]) == ("failed", None)


def statements(h: DatabaseHandler) -> list[tuple[str, bool]]:
    """Every statement the handler's engine sends from now on: its first words, and whether an executemany."""
    sent: list[tuple[str, bool]] = []

    @sa_event.listens_for(h.engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, _parameters, _context, executemany) -> None:
        sent.append((" ".join(statement.split()[:3]), executemany))

    return sent


def test_on_postgresql_a_batch_is_one_statement_per_table(handler):
    # psycopg's executemany would be one INSERT per row at the server.
    if handler.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's executemany runs in the worker's process: no round trip to save")
    events = [receipt(str(n), Status.SENT, n) for n in range(400)] + [reply(str(n), "yes") for n in range(99)]
    events.append(overdue("400", 61))
    sent = statements(handler)
    handler.handle_batch(events)
    assert sent == [
        ("INSERT INTO sms_messages", False),  # the statuses
        ("INSERT INTO sms_messages", False),  # the overdue alert
        ("SELECT pg_advisory_xact_lock(%(key)s)", False),
        ("INSERT INTO sms_events", False),
    ]
    assert count(handler) == 500


def test_a_batch_larger_than_a_page_is_stored_whole_and_in_order(handler):
    size = PAGE * 2 + 7
    events = [receipt(f"m{n}", Status.SENT, n) for n in range(size)]
    events += [receipt(f"m{n}", Status.DELIVERED, n + 1) for n in range(0, size, 3)]
    handler.handle_batch(events)
    handler.handle_batch(events)  # again: nothing twice
    with handler.engine.connect() as conn:
        stored = conn.execute(select(sms_events.c.event_id).order_by(sms_events.c.id)).scalars().all()
        statuses = conn.execute(select(sms_messages.c.status)).scalars().all()
    assert stored == [e.event_id for e in events], "ids are taken in the batch's order"
    delivered = len(range(0, size, 3))
    assert sorted(statuses) == ["delivered"] * delivered + ["sent"] * (size - delivered)


def test_raw_is_kept_as_it_came(handler):
    payload = {"ReplyText": 'nul\x00, é, \u2028, "quoted" \\ back', "n": [1, 2.5, None, True], "nested": {"a": {}}}
    handler.handle_batch([dataclasses.replace(reply("m1", "fine"), raw=payload), receipt("m2", Status.SENT, 1)])
    with handler.engine.connect() as conn:
        raws = conn.execute(select(sms_events.c.raw).order_by(sms_events.c.id)).scalars().all()
    assert raws == [payload, {}]


def test_two_message_ids_stored_alike_are_one_row(handler):
    # NUL is stored as U+FFFD (see above), and PostgreSQL refuses one statement upserting a row twice.
    handler.handle_batch([receipt("m\x001", Status.SENT, 1), receipt("m\ufffd1", Status.DELIVERED, 2)])
    assert message(handler, "m\ufffd1")["status"] == "delivered"
    assert count(handler) == 2


def test_an_overlong_value_is_refused_not_cut(handler):
    if handler.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps a string of any length")
    with pytest.raises(DBAPIError, match="too long"):
        handler.handle_batch([receipt("x" * 65, Status.SENT, 1)])
    assert count(handler) == 0
