"""SMSC handler calls: statuses and incoming SMS in every format and charset, checksums, and the database.

Where the samples come from: SMSC's page "Transmitting statuses and messages to the Client
handler" (smscentre.com/api/http/miscellaneous/callback/) names the fields (status: `id`,
`phone`, `status`, `time`, `ts`, `err`, `cnt`, `type`; incoming SMS: `id`, `phone`, `mes`,
`to`, `sent`, `time`), the charsets (`?charset=`, windows-1251 by default), the formats
(form fields; `fmt=2` XML; `fmt=3` JSON) and the checksum flags. It shows no XML element
names, so our XML samples use a root of our naming (any root is accepted) with one element
per field. Times are Unix seconds, as SMSC's other answers write them (`1,1286524541`).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from urllib.parse import quote_from_bytes, urlencode

import pytest
from sqlalchemy import create_engine, select

from handlers.db_schema import sms_events, sms_messages
from tests.conftest import SECRET, run_worker
from tests.webhook_cases import JSON, WebhookCases
from webhooks import create_app

URL = f"/smsc/callback?token={SECRET}"
FORM = "application/x-www-form-urlencoded"
PASSWORD = "smsc-Account-Pa55"

STATUS = {
    "id": "1234",
    "phone": "79991234567",
    "status": "1",
    "time": "1700000000",
    "ts": "1699999990",
    "err": "0",
    "cnt": "1",
    "type": "0",
}
TEXT = "Да, буду в 10:00. Спасибо! Ёлка"  # every character exists in all three charsets
INCOMING = {
    "id": "987",
    "phone": "79997654321",
    "mes": TEXT,
    "to": "79990000000",
    "sent": "1700000100",
    "time": "1700000105",
}


def form(fields: dict[str, str], charset: str) -> bytes:
    """A form body as SMSC writes it: each value percent-encoded from the bytes of `charset`."""
    return "&".join(f"{k}={quote_from_bytes(v.encode(charset))}" for k, v in fields.items()).encode("ascii")


def xml(fields: dict[str, str], charset: str, declare: bool = True) -> bytes:
    head = f'<?xml version="1.0" encoding="{charset}"?>' if declare else ""
    return (head + "<callback>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</callback>").encode(charset)


def queued(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


class TestSmscEndpoint(WebhookCases):
    url = "/smsc/callback"

    def valid_body(self):
        return {"data": STATUS}


# --- formats and charsets --------------------------------------------------------------------


def _post(client, query: str, body: bytes, content_type: str):
    return client.post(f"{URL}{query}", data=body, content_type=content_type, headers=JSON)


INCOMING_SHAPES = [
    pytest.param("", lambda: form(INCOMING, "cp1251"), FORM, id="form-default-windows-1251"),
    pytest.param("&charset=windows-1251", lambda: form(INCOMING, "cp1251"), FORM, id="form-windows-1251"),
    pytest.param("&charset=utf-8", lambda: form(INCOMING, "utf-8"), FORM, id="form-utf-8"),
    pytest.param("&charset=koi8-r", lambda: form(INCOMING, "koi8-r"), FORM, id="form-koi8-r"),
    pytest.param(
        "&charset=utf-8&fmt=3",
        lambda: json.dumps(INCOMING, ensure_ascii=False).encode(),
        "application/json",
        id="json-utf-8",
    ),
    pytest.param(
        "&fmt=3",
        lambda: json.dumps(INCOMING, ensure_ascii=False).encode("cp1251"),
        "application/json",
        id="json-default-windows-1251",
    ),
    pytest.param(
        "&charset=koi8-r&fmt=3",
        lambda: json.dumps(INCOMING, ensure_ascii=False).encode(),
        "application/json",
        id="json-koi8-r-not-used-with-fmt",
    ),
    pytest.param("&charset=utf-8&fmt=2", lambda: xml(INCOMING, "utf-8"), "application/xml", id="xml-utf-8"),
    pytest.param("&fmt=2", lambda: xml(INCOMING, "windows-1251"), "text/xml", id="xml-windows-1251"),
    pytest.param(
        "&fmt=2", lambda: xml(INCOMING, "windows-1251", declare=False), "text/xml", id="xml-windows-1251-undeclared"
    ),
    pytest.param("&charset=koi8-r&fmt=2", lambda: xml(INCOMING, "utf-8"), "text/xml", id="xml-koi8-r-not-used"),
]


@pytest.mark.parametrize("query,body,content_type", INCOMING_SHAPES)
def test_incoming_sms_in_every_format_and_charset(client, redis, query, body, content_type):
    response = _post(client, query, body(), content_type)
    assert response.status_code == 200, response.data
    [event] = queued(redis)
    assert (event["kind"], event["status"], event["final"]) == ("reply", "received", True)
    assert event["text"] == TEXT
    assert (event["message_id"], event["sender"], event["recipient"]) == ("987", "+79997654321", "+79990000000")
    assert event["occurred_at"] == "2023-11-14T22:15:00+00:00"  # `sent`, the phone's time


@pytest.mark.parametrize("charset,codec", [("windows-1251", "cp1251"), ("utf-8", "utf-8"), ("koi8-r", "koi8-r")])
def test_incoming_sms_as_a_get_query_string(client, redis, charset, codec):
    response = client.get(f"{URL}&charset={charset}&{form(INCOMING, codec).decode()}", headers=JSON)
    assert response.status_code == 200, response.data
    assert queued(redis)[0]["text"] == TEXT


def test_the_body_content_type_charset_wins_over_the_url(client, redis):
    response = _post(client, "&charset=windows-1251", form(INCOMING, "utf-8"), f"{FORM}; charset=utf-8")
    assert response.status_code == 200, response.data
    assert queued(redis)[0]["text"] == TEXT


def test_a_body_not_in_the_declared_charset_is_400_not_guessed(client, redis):
    response = _post(client, "&charset=utf-8", form(INCOMING, "cp1251"), FORM)
    assert response.status_code == 400
    assert "utf-8" in json.dumps(response.get_json())
    assert redis.llen("smshooks:inbox") == 0


@pytest.mark.parametrize(
    "query,body,content_type",
    [
        pytest.param("", lambda: form(STATUS, "cp1251"), FORM, id="form"),
        pytest.param(
            "&fmt=3&charset=utf-8",
            lambda: json.dumps({**STATUS, "id": 1234, "status": 1}).encode(),
            "application/json",
            id="json-numbers",
        ),
        pytest.param("&fmt=2", lambda: xml(STATUS, "windows-1251"), "application/xml", id="xml"),
    ],
)
def test_status_in_every_format(client, redis, query, body, content_type):
    response = _post(client, query, body(), content_type)
    assert response.status_code == 200, response.data
    [event] = queued(redis)
    assert (event["kind"], event["message_id"], event["recipient"]) == ("receipt", "1234", "+79991234567")
    assert (event["status"], event["final"], event["provider_status"]) == ("delivered", True, "1")
    assert event["occurred_at"] == "2023-11-14T22:13:20+00:00"  # `time`, when the status changed
    assert event["raw"]["cnt"] == "1" and event["raw"]["err"] == "0"


# --- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code,status,final,words",
    [
        ("-3", "unknown", False, "not found"),
        ("-2", "failed", True, "stopped"),
        ("-1", "queued", False, "waiting"),
        ("0", "sent", False, "handed to the operator"),
        ("1", "delivered", True, "delivered"),
        ("2", "delivered", True, "read"),
        ("3", "failed", True, "expired"),
        ("4", "delivered", True, "link clicked"),
        ("20", "failed", True, "undeliverable"),
        ("22", "failed", True, "invalid number"),
        ("23", "failed", True, "prohibited"),
        ("24", "failed", True, "insufficient funds"),
        ("25", "failed", True, "number unavailable"),
        ("21", "unknown", False, "unknown status 21"),
        ("7", "unknown", False, "unknown status 7"),
        ("X", "unknown", False, "unknown status X"),
    ],
)
def test_every_status_code(client, redis, code, status, final, words):
    response = client.post(URL, data={**STATUS, "status": code}, headers=JSON)
    assert response.status_code == 200, response.data
    [event] = queued(redis)
    assert (event["status"], event["final"], event["provider_status"]) == (status, final, code)
    assert words in event["description"]


@pytest.mark.parametrize(
    "code,status", [("01", "delivered"), ("+1", "delivered"), ("-01", "queued"), ("020", "failed")]
)
def test_status_codes_are_compared_as_numbers(client, redis, code, status):
    assert client.post(URL, data={**STATUS, "status": code}, headers=JSON).status_code == 200
    [event] = queued(redis)
    assert (event["status"], event["provider_status"]) == (status, code)  # kept as SMSC wrote it


def test_err_is_kept(client, redis):
    client.post(URL, data={**STATUS, "status": "20", "err": "1"})
    [event] = queued(redis)
    assert event["description"] == "undeliverable (err 1)"
    assert event["raw"]["err"] == "1"


def test_one_id_sent_to_two_phones_gives_two_events(client, redis):
    client.post(URL, data=STATUS)
    client.post(URL, data={**STATUS, "phone": "79991234568"})
    client.post(URL, data=STATUS)  # SMSC calls again: a duplicate
    assert [e["recipient"] for e in queued(redis)] == ["+79991234567", "+79991234568"]


def test_a_repeated_call_without_a_time_is_still_a_duplicate(client, redis):
    untimed = {k: v for k, v in STATUS.items() if k not in ("time", "ts")}
    first = client.post(URL, data=untimed, headers=JSON).get_json()
    second = client.post(URL, data=untimed, headers=JSON).get_json()
    assert first["event_ids"] == second["event_ids"] and second["duplicates"] == 1


@pytest.mark.parametrize(
    "body,fields",
    [
        ({"phone": "79991234567", "status": "1"}, {"id"}),
        ({"id": "1", "phone": "79991234567"}, {"status"}),
        ({"id": "1", "status": "1"}, {"phone"}),
        ({"phone": "79991234567", "mes": "hi"}, {"id"}),
        ({}, {"id", "phone", "status"}),
    ],
)
def test_bad_calls_name_each_missing_field(client, redis, body, fields):
    response = client.post(URL, data=body, headers=JSON)
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == fields
    assert redis.llen("smshooks:inbox") == 0


# --- checksums ---------------------------------------------------------------------------------


def checksum(algorithm: str, text: str, charset: str = "cp1251") -> str:
    data = text.encode(charset)
    if algorithm == "crc32":
        return f"{zlib.crc32(data):08x}"
    return hashlib.new(algorithm, data).hexdigest()


@pytest.fixture
def signed_client(env):
    return create_app({**env, "SMSC_PASSWORD": PASSWORD}).test_client()


STATUS_STRING = f"1234:79991234567:1:{PASSWORD}"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "crc32"])
def test_right_status_checksum_is_accepted(signed_client, redis, algorithm):
    body = {**STATUS, algorithm: checksum(algorithm, STATUS_STRING)}
    response = signed_client.post(f"{URL}&{algorithm}", data=body, headers=JSON)
    assert response.status_code == 200, response.data
    assert algorithm not in queued(redis)[0]["raw"], "a hash of the password must not be stored"


def test_crc32_as_php_decimal_is_accepted(signed_client):
    body = {**STATUS, "crc32": str(zlib.crc32(STATUS_STRING.encode()))}
    assert signed_client.post(URL, data=body, headers=JSON).status_code == 200


@pytest.mark.parametrize("charset,codec", [("windows-1251", "cp1251"), ("utf-8", "utf-8"), ("koi8-r", "koi8-r")])
def test_incoming_checksum_is_over_the_text_in_its_charset(signed_client, redis, charset, codec):
    string = f"79997654321:{TEXT}:79990000000:{PASSWORD}"
    body = form({**INCOMING, "md5": checksum("md5", string, codec)}, codec)
    response = signed_client.post(f"{URL}&charset={charset}&md5", data=body, content_type=FORM, headers=JSON)
    assert response.status_code == 200, response.data
    assert queued(redis)[0]["text"] == TEXT


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**STATUS, "md5": checksum("md5", "1234:79991234567:1:wrong")}, id="wrong-password"),
        pytest.param({**STATUS, "status": "3", "md5": checksum("md5", STATUS_STRING)}, id="status-changed"),
        pytest.param({**STATUS, "sha1": "0" * 40}, id="wrong-sha1"),
        pytest.param({**STATUS, "crc32": "zz"}, id="garbage-crc32"),
        pytest.param(STATUS, id="missing"),
    ],
)
def test_wrong_or_missing_checksum_is_401_and_stores_nothing(signed_client, redis, body):
    response = signed_client.post(URL, data=body, headers=JSON)
    assert response.status_code == 401
    assert set(response.get_json()["fields"]) <= {"md5", "sha1", "crc32"}
    assert PASSWORD not in response.get_data(as_text=True)
    assert redis.llen("smshooks:inbox") == 0


def test_checksum_still_needs_the_shared_secret(signed_client, redis):
    body = {**STATUS, "md5": checksum("md5", STATUS_STRING)}
    assert signed_client.post("/smsc/callback", data=body, headers=JSON).status_code == 401


def test_without_smsc_password_a_checksum_is_not_checked_nor_kept(client, redis):
    assert client.post(URL, data={**STATUS, "md5": "anything"}).status_code == 200
    assert "md5" not in queued(redis)[0]["raw"]


# --- end to end --------------------------------------------------------------------------------


def test_status_and_incoming_reach_the_database(env, redis, sqlite_url):
    client = create_app(env).test_client()
    sent = client.post(URL, data={**STATUS, "status": "0", "time": "1699999995"})
    delivered = client.post(f"{URL}&fmt=3&charset=utf-8", json=STATUS)
    incoming = client.post(f"{URL}&{urlencode(INCOMING, encoding='cp1251')}")
    assert [r.status_code for r in (sent, delivered, incoming)] == [200, 200, 200]
    run_worker(env)
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        events = conn.execute(select(sms_events).order_by(sms_events.c.id)).mappings().all()
        message = conn.execute(select(sms_messages).where(sms_messages.c.message_id == "1234")).mappings().one()
    engine.dispose()
    assert [(e["kind"], e["status"], e["provider"]) for e in events] == [
        ("receipt", "sent", "smsc"),
        ("receipt", "delivered", "smsc"),
        ("reply", "received", "smsc"),
    ]
    assert events[2]["text"] == TEXT and events[2]["sender"] == "+79997654321"
    assert (message["status"], message["recipient"]) == ("delivered", "+79991234567")
