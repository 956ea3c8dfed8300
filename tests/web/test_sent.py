"""POST /api/v1/sent through the Flask test client on real Redis, and once on gunicorn with `smshooks worker`."""

from __future__ import annotations

import copy
import json
import logging
import time

import pytest
import requests

from handlers.database import init_db
from tests.conftest import SECRET, free_port, process_env, wait_for
from tests.processes import WORKER, gunicorn, rows, running, service, wait_until_up
from tests.redoxygen_samples import MESSAGE_1, SENDSMS_RESPONSE
from webhooks import create_app
from webhooks.config import API_MAX_BODY_BYTES, ConfigError, Settings
from webhooks.events import load_events
from webhooks.providers.send_responses import MAX_MESSAGES
from webhooks.telemetry.redaction import secrets_from_env

URL = "/api/v1/sent"
TOKEN = "api-token-for-tests-0123456789"
OLD_TOKEN = "old-api-token-still-valid-987654"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RED_OXYGEN = {"provider": "redoxygen", "response": SENDSMS_RESPONSE}


@pytest.fixture
def api_env(env):
    return {**env, "API_TOKENS": f"{TOKEN}, {OLD_TOKEN}"}


@pytest.fixture
def api(api_env):
    return create_app(api_env).test_client()


def inbox(redis) -> list:
    return load_events([json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)])


def error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]
    return body


# --------------------------------------------------------------------------- tokens


def test_without_api_tokens_the_api_is_off_and_says_how_to_turn_it_on(client, redis):
    body = error(client.post(URL, json=RED_OXYGEN, headers=AUTH), 404)
    assert "API_TOKENS" in body["error"]
    assert redis.llen("smshooks:inbox") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-thirty-chars-xx"},
        {"Authorization": f"Bearer {SECRET}"},  # WEBHOOK_SECRET is the providers', never the API's
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer \u00e9\u00e9"},
    ],
)
def test_a_missing_or_wrong_token_is_401_bearer(api, redis, headers):
    response = api.post(URL, json=RED_OXYGEN, headers=headers)
    error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert redis.llen("smshooks:inbox") == 0


def test_the_callback_secret_in_the_query_opens_nothing(api, redis):
    error(api.post(f"{URL}?token={SECRET}", json=RED_OXYGEN), 401)


@pytest.mark.parametrize("token", [TOKEN, OLD_TOKEN])
def test_every_token_of_a_rotation_is_accepted(api, redis, token):
    response = api.post(URL, json=RED_OXYGEN, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["accepted"] == 2


def test_wrong_tokens_share_the_callbacks_throttle_and_a_right_one_passes(api_env, redis):
    client = create_app({**api_env, "AUTH_FAIL_LIMIT": "2"}).test_client()
    assert client.post("/redoxygen/receipt?token=wrong", json=MESSAGE_1).status_code == 401
    assert client.post(URL, json=RED_OXYGEN, headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.post(URL, json=RED_OXYGEN, headers={"Authorization": "Bearer nope"})
    error(response, 429)
    assert int(response.headers["Retry-After"]) > 0
    assert client.post(URL, json=RED_OXYGEN, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    "tokens, says",
    [
        (f"{TOKEN},short-one", "token 2 of 2 is 9"),
        ("short", "it is 5"),
        (" , ", "no token"),
        (f"{OLD_TOKEN},{TOKEN}", "WEBHOOK_SECRET"),  # WEBHOOK_SECRET is TOKEN below
    ],
)
def test_tokens_are_checked_at_start(env, tokens, says):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**env, "WEBHOOK_SECRET": f"{SECRET},{TOKEN}", "API_TOKENS": tokens})
    assert says in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_tokens_are_secrets_for_logs_and_sentry(api_env):
    assert {TOKEN, OLD_TOKEN} <= set(secrets_from_env({"API_TOKENS": f"{TOKEN},{OLD_TOKEN}"}))
    assert TOKEN not in repr(Settings.from_env(api_env))


def test_no_token_in_any_log_line_event_or_error_body(api, redis, caplog):
    caplog.set_level(logging.DEBUG)
    note = {"provider": "ogangi", "message_id": "5", "note": f"Bearer {TOKEN} and {OLD_TOKEN}"}
    answers = [
        api.post(URL, json=note, headers=AUTH),
        api.post(URL, json={"provider": TOKEN, "response": {}}, headers=AUTH),
        api.post(URL, json=[{"provider": "smsc", "message_id": "1", "sent_at": TOKEN}], headers=AUTH),
        api.post(URL, json=RED_OXYGEN, headers={"Authorization": f"Bearer {TOKEN[:-1]}"}),
    ]
    assert [a.status_code for a in answers] == [200, 400, 400, 401]
    bodies = [a.get_data(as_text=True) for a in answers]
    logging.getLogger("webhooks.test").warning("the token was %s", TOKEN)  # the log redaction takes it out
    stored = inbox(redis)
    assert len(stored) == 1 and stored[0].raw["note"] == "Bearer [secret] and [secret]"
    for text in [*bodies, caplog.text, *redis.lrange("smshooks:inbox", 0, -1)]:
        text = text.decode() if isinstance(text, bytes) else text
        assert TOKEN not in text and OLD_TOKEN not in text and TOKEN[:-1] not in text


# --------------------------------------------------------------------------- what is stored


def test_a_sendsms_response_stores_queued_receipts(api, redis):
    response = api.post(URL, json=RED_OXYGEN, headers=AUTH)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    stored = inbox(redis)
    assert [e.event_id for e in stored] == body["event_ids"]
    assert [(e.provider, e.kind.value, e.status.value, e.final, e.message_id) for e in stored] == [
        ("redoxygen", "receipt", "queued", False, "123"),
        ("redoxygen", "receipt", "queued", False, "124"),
    ]
    assert "send response" in stored[0].description


def test_a_retried_post_is_stored_once(api, redis):
    first = api.post(URL, json=RED_OXYGEN, headers=AUTH).get_json()
    again = api.post(f"{URL}?provider=redoxygen", json=SENDSMS_RESPONSE, headers=AUTH).get_json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert again["event_ids"] == first["event_ids"]
    assert redis.llen("smshooks:inbox") == 2


def test_every_accepted_shape(api, redis):
    shapes = [
        {"provider": "digitaleo", "response": {"id": "121905361", "recipient": "+33696300056"}},
        {"provider": "smsc", "response": {"id": 12, "cnt": 1}, "phones": "79999999999"},
        {"provider": "ogangi", "message_id": "o-1", "recipient": "+584141234567"},
        [{"provider": "ogangi", "message_id": "o-2"}],
        {"messages": [{"provider": "redoxygen", "message_id": 9}]},
    ]
    for shape in shapes:
        response = api.post(URL, json=shape, headers=AUTH)
        assert response.status_code == 200, (shape, response.get_data(as_text=True))
    assert [(e.provider, e.message_id) for e in inbox(redis)] == [
        ("digitaleo", "121905361"),
        ("smsc", "12"),
        ("ogangi", "o-1"),
        ("ogangi", "o-2"),
        ("redoxygen", "9"),
    ]


def test_smsc_phones_may_come_in_the_query(api, redis):
    response = api.post(f"{URL}?provider=smsc&phones=79999999999,79999999998", json={"id": 3, "cnt": 2}, headers=AUTH)
    assert response.get_json()["accepted"] == 2
    assert {e.recipient for e in inbox(redis)} == {"+79999999999", "+79999999998"}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "data, content_type, status, field",
    [
        (b"{not json", "application/json", 400, "_body"),
        (b'{"a": "\xff\xfe"}', "application/json", 400, "_body"),
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "_body"),
        (b"provider=redoxygen", "application/x-www-form-urlencoded", 415, "_body"),
        (b'{"provider": "twilio", "response": {}}', "application/json", 400, "provider"),
        (b'{"provider": "redoxygen", "response": 5}', "application/json", 400, "response"),
        (b'{"provider": "smsc", "response": {"id": 1}}', "application/json", 400, "recipients"),
        (b'{"message_id": 5}', "application/json", 400, "provider"),
        (b'"just text"', "application/json", 400, "_body"),
        (b"[]", "application/json", 400, "_body"),
    ],
)
def test_bad_bodies_are_4xx_with_the_field(api, redis, data, content_type, status, field):
    body = error(api.post(URL, data=data, content_type=content_type, headers=AUTH), status)
    assert field in body["fields"], body
    assert redis.llen("smshooks:inbox") == 0


def test_more_than_max_messages_is_413_saying_so(api, redis):
    messages = [{"provider": "ogangi", "message_id": str(i)} for i in range(MAX_MESSAGES + 1)]
    body = error(api.post(URL, json=messages, headers=AUTH), 413)
    assert f"at most {MAX_MESSAGES}" in body["fields"]["_body"][0]
    assert redis.llen("smshooks:inbox") == 0


def test_a_full_pretty_printed_response_of_max_messages_fits_the_body_limit(api, redis):
    response = copy.deepcopy(SENDSMS_RESPONSE)
    entry = response["Messages"].pop("1")
    response["Messages"].pop("2")
    for number in range(1, MAX_MESSAGES + 1):
        response["Messages"][str(number)] = {**entry, "SMSId": 1_000_000_000 + number, "DestTn": f"+6141{number:07d}"}
    data = json.dumps({"provider": "redoxygen", "response": response}, indent=4).encode()
    assert 64 * 1024 < len(data) < API_MAX_BODY_BYTES  # over the callbacks' limit, within this route's
    reply = api.post(URL, data=data, content_type="application/json", headers=AUTH)
    assert reply.status_code == 200, reply.get_data(as_text=True)[:500]
    assert reply.get_json()["accepted"] == MAX_MESSAGES
    assert redis.llen("smshooks:inbox") == MAX_MESSAGES


def test_a_body_over_the_limit_is_413(api, redis):
    data = b'{"provider": "ogangi", "message_id": "1", "pad": "' + b"a" * API_MAX_BODY_BYTES + b'"}'
    error(api.post(URL, data=data, content_type="application/json", headers=AUTH), 413)


def test_wrong_method_is_json_405(api):
    error(api.get(URL, headers=AUTH), 405)


def test_redis_stopped_is_503_with_retry_after(api, redis_server):
    redis_server.stop()
    try:
        response = api.post(URL, json=RED_OXYGEN, headers=AUTH)
        error(response, 503)
        assert int(response.headers["Retry-After"]) > 0
    finally:
        redis_server.start()


def test_counted_in_metrics_under_api(api, redis):
    api.post(URL, json=RED_OXYGEN, headers=AUTH)
    api.post(URL, json=RED_OXYGEN, headers={"Authorization": "Bearer nope"})
    text = api.get(f"/metrics?token={SECRET}").get_data(as_text=True)
    assert 'smshooks_callbacks_total{code="200",outcome="accepted",provider="api"}' in text
    assert 'smshooks_callbacks_total{code="401",outcome="rejected",provider="api"}' in text


def test_the_openapi_document_describes_it(api):
    document = api.get("/openapi.json").get_json()
    operation = document["paths"][URL]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"200", "400", "401", "404", "413", "429", "503"} <= set(operation["responses"])


# --------------------------------------------------------------------------- end to end


def test_a_posted_send_is_queued_then_its_receipt_delivers_it(redis, redis_server, sqlite_url):
    init_db(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(
        {"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "WEBHOOK_SECRET": SECRET, "API_TOKENS": TOKEN}
    )
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        sent = requests.post(f"{base}{URL}", json=RED_OXYGEN, headers=AUTH, timeout=10)
        assert sent.status_code == 200, sent.text
        wait_for(lambda: len(rows(sqlite_url, "select 1 from sms_messages")) == 2, timeout=20)
        assert rows(sqlite_url, "select message_id, status, recipient from sms_messages order by message_id") == [
            ("123", "queued", "+61111222333"),
            ("124", "queued", "+61111222334"),
        ]
        assert rows(sqlite_url, "select kind, status from sms_events") == [("receipt", "queued")] * 2

        receipt = requests.post(
            f"{base}/redoxygen/receipt?token={SECRET}", json={"Messages": {"Count": 1, "1": MESSAGE_1}}, timeout=10
        )
        assert receipt.status_code == 200, receipt.text
        wait_for(lambda: len(rows(sqlite_url, "select 1 from sms_events")) == 3, timeout=20)
    assert rows(sqlite_url, "select message_id, status from sms_messages order by message_id") == [
        ("123", "delivered"),
        ("124", "queued"),
    ]
    assert rows(sqlite_url, "select status from sms_events where message_id = '123' order by id") == [
        ("queued",),
        ("delivered",),
    ]
    for proc in procs:
        assert TOKEN not in proc.stdout.read()


def test_a_posted_send_whose_receipt_never_comes_is_declared_overdue(redis, redis_server, sqlite_url):
    port, base, env = service(redis_server, sqlite_url, {"API_TOKENS": TOKEN, "RECEIPT_DEADLINE": "2s"})
    messages = "select message_id, status, overdue_since is not null from sms_messages order by message_id"
    alerts = "select message_id, status from sms_events where kind = 'receipt_overdue' order by message_id"
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        sent = requests.post(f"{base}{URL}", json=RED_OXYGEN, headers=AUTH, timeout=10)
        assert sent.status_code == 200, sent.text
        # No receipt comes: the worker's watchdog declares both once their 2 s are up.
        wait_for(lambda: rows(sqlite_url, alerts) == [("123", "queued"), ("124", "queued")], timeout=20)
        wait_for(lambda: rows(sqlite_url, messages) == [("123", "queued", 1), ("124", "queued", 1)])
        [(description,)] = rows(sqlite_url, "select description from sms_events where kind = 'receipt_overdue' limit 1")
        assert description.startswith("no final status 2 s after `queued` at 2024-09-20T04:39:13.819")

        receipt = requests.post(
            f"{base}/redoxygen/receipt?token={SECRET}", json={"Messages": {"Count": 1, "1": MESSAGE_1}}, timeout=10
        )
        assert receipt.status_code == 200, receipt.text
        wait_for(lambda: rows(sqlite_url, messages) == [("123", "delivered", 0), ("124", "queued", 1)], timeout=20)
        time.sleep(2)  # more passes: still one alert each
        assert rows(sqlite_url, alerts) == [("123", "queued"), ("124", "queued")]
