"""The refused-callbacks log (telemetry/refusals.py) and its page, through the real endpoints and real Redis."""

from __future__ import annotations

import base64
import json

from tests.conftest import SECRET
from tests.console.conftest import API_TOKEN, PASSWORD, SECRET_KEY
from tests.redoxygen_samples import MESSAGE_1
from webhooks.telemetry import refusals

JSON = {"Accept": "application/json"}
WRONG_PASSWORD = "wrong-basic-password-77"
BASIC = base64.b64encode(f"redoxygen:{WRONG_PASSWORD}".encode()).decode()
HIDDEN = (SECRET, API_TOKEN, "hunter2-is-my-password", WRONG_PASSWORD, PASSWORD, SECRET_KEY)


def stored(redis) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(refusals.KEY, 0, -1)]


def refuse_a_few(client) -> None:
    """Four refusals whose bodies, queries and headers carry every kind of secret."""
    form = f"SMSId=1&note={SECRET}&password=hunter2-is-my-password&api={API_TOKEN}"
    response = client.post(
        "/redoxygen/receipt",
        data=form,
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Basic {BASIC}", **JSON},
    )
    assert response.status_code == 401
    body = json.dumps({"Note": SECRET, "ReplyURL": f"https://x.test/?token={SECRET}"})[:-1]  # cut: not JSON
    assert (
        client.post(f"/redoxygen/receipt?token={SECRET}", data=body, content_type="application/json").status_code == 400
    )
    sent = client.post(
        "/api/v1/sent", json={"token": API_TOKEN}, headers={"Authorization": "Bearer not-the-token-at-all-000000"}
    )
    assert sent.status_code == 401
    assert client.post(f"/inbound/email?token={SECRET}", data=b"\x00", content_type="image/png").status_code == 415


def test_every_refusal_is_logged_newest_first_with_no_secret(console, redis):
    refuse_a_few(console)
    entries = stored(redis)
    assert [(e["status"], e["endpoint"], e["method"]) for e in entries] == [
        (415, "/inbound/email", "POST"),
        (401, "/api/v1/sent", "POST"),
        (400, "/redoxygen/receipt", "POST"),
        (401, "/redoxygen/receipt", "POST"),
    ]
    email, sent, bad, unauthorized = entries
    assert all(e["client"] == "127.0.0.1" for e in entries)
    assert "secret" in unauthorized["reason"], unauthorized["reason"]
    assert "SMSId=1&note=[secret]&password=[Filtered]&api=[secret]" == unauthorized["body"]
    assert bad["reason"].startswith("the body cannot be read: "), bad["reason"]
    assert '"Note": "[secret]"' in bad["body"]
    assert bad["query"] == "token=[secret]"
    assert '"ReplyURL": "https://x.test/?token=[secret]"' in bad["body"]
    assert "Bearer" in sent["reason"] and sent["body"] == '{"token": "[secret]"}'
    assert email["content_type"] == "image/png"
    raw = json.dumps(entries)
    for secret in HIDDEN:
        assert secret not in raw, secret
    assert BASIC not in raw and "not-the-token-at-all" not in raw  # no header is kept


def test_the_page_lists_them_with_no_secret(console, redis):
    refuse_a_few(console)
    html = console.get("/console/refused").get_data(as_text=True)
    assert "POST /redoxygen/receipt" in html
    assert "POST /api/v1/sent" in html and "POST /inbound/email?token=[secret]" in html
    assert "password=[Filtered]" in html
    for secret in HIDDEN:
        assert secret not in html, secret


def test_the_log_is_capped_and_expires(client, redis, monkeypatch):
    monkeypatch.setattr(refusals, "CAP", 5)
    for i in range(8):
        assert client.post("/redoxygen/receipt", json={**MESSAGE_1, "SMSId": i}, headers=JSON).status_code == 401
    entries = stored(redis)
    assert len(entries) == 5
    assert [json.loads(e["body"])["SMSId"] for e in entries] == [7, 6, 5, 4, 3]
    assert 6 * 24 * 3600 < redis.ttl(refusals.KEY) <= refusals.TTL


def test_a_long_body_is_cut_after_its_secrets_are_removed(client, redis):
    body = "x" * 500 + SECRET + "y" * 2000  # the secret straddles the cut: no half of it may show
    client.post("/redoxygen/receipt", data=body, content_type="text/plain")
    [entry] = stored(redis)
    assert entry["body"] == "x" * 500 + "[secret]" + "y" * 4
    assert len(entry["body"]) == refusals.BODY_BYTES


def test_redis_down_while_logging_never_changes_the_answer(client, redis, redis_server):
    redis_server.stop()
    try:
        response = client.post("/redoxygen/receipt", json=MESSAGE_1, headers=JSON)
    finally:
        redis_server.start()
    assert response.status_code == 401  # the throttle fails open; the log fails silently
    assert response.get_json()["error"]
