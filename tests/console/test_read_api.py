"""The read API (`/api/v1/messages/...`, `/api/v1/events`): real Redis, rows written by the real DatabaseHandler."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth
from sqlalchemy import select

from handlers.database import DatabaseHandler, init_db
from handlers.db_schema import sms_events
from tests.stored_events import receipt, reply
from webhooks import create_app
from webhooks.events import EVENT_SCHEMA, Event, Kind, Status
from webhooks.web.openapi import document
from webhooks.web.read_api import decode_cursor, encode_cursor

TOKEN = "api-token-for-read-tests-0123456789"
SECOND = "second-api-token-rotating-in-98765"


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api_env(env):
    return {**env, "API_TOKENS": f"{TOKEN},{SECOND}", "AUTH_FAIL_LIMIT": "100"}


@pytest.fixture
def api(api_env):
    return create_app(api_env).test_client()


@pytest.fixture
def stored(api_env):
    """Three messages and a reply, written by the database handler into the app's SQLite file."""
    handler = DatabaseHandler(api_env["DATABASE_URL"])
    events = [receipt("m1", Status.SENT, 1), receipt("m2", Status.SENT, 2), receipt("m1", Status.DELIVERED, 3)]
    events.append(receipt("r1", Status.FAILED, 4, provider="redoxygen"))
    handler.handle_batch(events[:2])
    handler.handle_batch(events[2:])
    handler.handle_batch([reply("m1", "thanks")])
    handler.close()
    return events


def test_tokens_none_wrong_right_and_the_second_during_a_rotation(api, stored):
    for headers in ({}, bearer("wrong-token-of-the-right-length-00"), {"Authorization": f"Basic {TOKEN}"}):
        answer = api.get("/api/v1/events", headers=headers)
        assert answer.status_code == 401 and "Bearer" in answer.headers["WWW-Authenticate"]
        assert TOKEN not in answer.get_data(as_text=True) and "token" in answer.get_json()["error"]
    for token in (TOKEN, SECOND):
        assert api.get("/api/v1/events", headers=bearer(token)).status_code == 200
        assert api.get("/api/v1/messages/smsc/m1", headers=bearer(token)).status_code == 200


def test_the_api_is_off_without_api_tokens(env):
    answer = create_app(env).test_client().get("/api/v1/events", headers=bearer())
    assert answer.status_code == 404 and "API_TOKENS" in answer.get_json()["error"]


def test_a_message_with_its_status_and_events_in_wire_form(api, stored):
    body = api.get("/api/v1/messages/smsc/m1", headers=bearer()).get_json()
    assert (body["provider"], body["message_id"], body["status"], body["final"]) == ("smsc", "m1", "replied", True)
    assert body["recipient"] == "+61409000000" and body["overdue_since"] is None
    assert [(e["kind"], e["status"]) for e in body["events"]] == [
        ("receipt", "sent"),
        ("receipt", "delivered"),
        ("reply", "received"),
    ]
    # What the forward handler would POST for the same event.
    assert body["events"][1] == EVENT_SCHEMA.dump(stored[2])
    assert set(body["events"][0]) == set(EVENT_SCHEMA.fields)


def test_an_unknown_message_is_a_404_json(api, stored):
    answer = api.get("/api/v1/messages/smsc/nope", headers=bearer())
    assert answer.status_code == 404 and "nope" in answer.get_json()["error"]
    assert api.get("/api/v1/messages/redoxygen/m1", headers=bearer()).status_code == 404


def test_a_message_id_with_a_slash_is_found(api, api_env):
    handler = DatabaseHandler(api_env["DATABASE_URL"])
    handler.handle_batch([receipt("a/b c", Status.SENT, 1)])
    handler.close()
    body = api.get("/api/v1/messages/smsc/a%2Fb%20c", headers=bearer()).get_json()
    assert body["message_id"] == "a/b c" and len(body["events"]) == 1


def test_events_in_order_stored_with_filters_and_a_cursor(api, stored):
    everything = api.get("/api/v1/events", headers=bearer()).get_json()
    assert [(e["message_id"], e["status"]) for e in everything["events"]] == [
        ("m1", "sent"),
        ("m2", "sent"),
        ("m1", "delivered"),
        ("r1", "failed"),
        ("m1", "received"),
    ]
    assert everything["more"] is False
    first = api.get("/api/v1/events?limit=2", headers=bearer()).get_json()
    assert [e["message_id"] for e in first["events"]] == ["m1", "m2"] and first["more"] is True
    rest = api.get(f"/api/v1/events?after={first['next']}&limit=1000", headers=bearer()).get_json()
    assert [e["message_id"] for e in rest["events"]] == ["m1", "r1", "m1"]
    # Nothing new: the same cursor comes back, to poll with again.
    idle = api.get(f"/api/v1/events?after={rest['next']}", headers=bearer()).get_json()
    assert idle["events"] == [] and idle["next"] == rest["next"]
    assert [e["message_id"] for e in api.get("/api/v1/events?provider=redoxygen", headers=bearer()).json["events"]] == [
        "r1"
    ]
    assert [e["kind"] for e in api.get("/api/v1/events?kind=reply", headers=bearer()).json["events"]] == ["reply"]
    sent = api.get("/api/v1/events?status=sent&kind=receipt&provider=smsc", headers=bearer()).json["events"]
    assert [e["message_id"] for e in sent] == ["m1", "m2"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=garbage", "after"),
        ("after=", "after"),  # leave it out to start from the first event
        ("after=e12a", "after"),
        ("after=e01", "after"),
        ("after=e1234567890123456789", "after"),  # past any id
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("limit=%C2%B2", "limit"),  # a superscript two: isdigit() but not int()
        ("kind=sms", "kind"),
        ("status=lost", "status"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(api, stored, query, field):
    answer = api.get(f"/api/v1/events?{query}", headers=bearer())
    assert answer.status_code == 400
    assert field in answer.get_json()["fields"]


def test_the_cursor_round_trips():
    assert decode_cursor(encode_cursor(123456789)) == 123456789
    assert decode_cursor(encode_cursor(0)) == 0
    with pytest.raises(ValueError):
        decode_cursor(encode_cursor(1) + "!")


def test_without_the_database_handler_the_api_says_so(api_env):
    api = create_app({**api_env, "HANDLERS": "log"}).test_client()
    for path in ("/api/v1/events", "/api/v1/messages/smsc/m1"):
        answer = api.get(path, headers=bearer())
        assert answer.status_code == 409
        assert "HANDLERS" in answer.get_json()["error"] and "database" in answer.get_json()["error"]


def test_a_database_that_cannot_be_read_is_a_503(api_env, tmp_path):
    # A SQLite file never migrated: no tables. (An unreachable PostgreSQL answers the same way.)
    api = create_app({**api_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}).test_client()
    answer = api.get("/api/v1/events", headers=bearer())
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "database" in answer.get_json()["error"]
    unreachable = create_app({**api_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}).test_client()
    assert unreachable.get("/api/v1/messages/smsc/m1", headers=bearer()).status_code == 503


def _batch(writer: int, batch: int, size: int) -> list[Event]:
    at = datetime.now(timezone.utc)
    return [
        Event(
            provider="smsc",
            kind=Kind.RECEIPT,
            status=Status.DELIVERED,
            final=True,
            message_id=f"w{writer}-b{batch}-{i}",
            recipient="+61409000000",
            received_at=at + timedelta(microseconds=i),
        )
        for i in range(size)
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def feed_env(request, api_env):
    if request.param == "sqlite":
        return api_env
    url = request.getfixturevalue("postgres_url")
    init_db(url)
    return {**api_env, "DATABASE_URL": url}


def test_a_poller_sees_every_event_once_in_order_while_writers_insert(feed_env):
    """Four writers (each its own engine, so their transactions overlap) while a client polls with `after`."""
    url = feed_env["DATABASE_URL"]
    api = create_app(feed_env).test_client()
    writers, batches, size = 4, 25, 8
    errors: list[BaseException] = []

    def write(n: int) -> None:
        handler = DatabaseHandler(url)
        try:
            for b in range(batches):
                handler.handle_batch(_batch(n, b, size))
        except BaseException as err:  # the assertion below reports it
            errors.append(err)
        finally:
            handler.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    seen: list[str] = []
    cursor = None
    polls = 0
    while True:
        done = not any(t.is_alive() for t in threads)
        query = {"limit": 7} if cursor is None else {"limit": 7, "after": cursor}
        body = api.get("/api/v1/events", query_string=query, headers=bearer()).get_json()
        seen.extend(e["event_id"] for e in body["events"])
        cursor, polls = body["next"], polls + 1
        if done and not body["events"]:
            break  # the writers had finished before this poll began: nothing is left to come
        if not body["events"]:
            time.sleep(0.002)
    assert errors == []
    handler = DatabaseHandler(url)
    with handler.engine.connect() as conn:
        stored = list(conn.execute(select(sms_events.c.event_id).order_by(sms_events.c.id)).scalars())
    handler.close()
    assert len(stored) == writers * batches * size
    assert len(seen) == len(set(seen)), "an event was seen twice"
    assert seen == stored, f"missed {len(set(stored) - set(seen))} of {len(stored)}, or out of order"
    assert polls > 10  # the poller really ran while the writers wrote


read_api_schema = schemathesis.openapi.from_dict(document()).include(path_regex="^/api/v1/(events|messages)")


@read_api_schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_document_tells_the_truth_about_the_read_api(case, api_env):
    """Every schemathesis check, positive and negative data included: what it describes is accepted, the rest is not.

    (ignored_auth is left to the token tests above: it probes with the token this test adds.)
    """
    handler = DatabaseHandler(api_env["DATABASE_URL"])
    handler.handle_batch([receipt("m1", Status.SENT, 1)])
    handler.close()
    app = create_app({**api_env, "AUTH_FAIL_LIMIT": "0"})
    # The coverage phase's case without the header must stay without it (and get its 401).
    dropped = getattr(getattr(getattr(case.meta, "phase", None), "data", None), "parameter", None) or ""
    if dropped.lower() != "authorization":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
    case.operation.schema.app = app
    case.call_and_validate(app=app, excluded_checks=[ignored_auth])
