"""Who may post: rotated secrets, the IP allow-list behind proxies, and the failed-authentication throttle."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET, free_port
from tests.redoxygen_samples import REPLY
from webhooks import create_app
from webhooks.config import ConfigError, Settings

JSON = {"Accept": "application/json"}
OLD_SECRET = "old-Secret_being-rotated-out"


def post(client, token=SECRET, remote="127.0.0.1", headers=None, data=None):
    query = f"?token={token}" if token else ""
    return client.post(
        f"/redoxygen/reply{query}",
        data=data or REPLY,
        headers={**JSON, **(headers or {})},
        environ_base={"REMOTE_ADDR": remote},
    )


def test_every_listed_secret_is_accepted_during_a_rotation(env, redis):
    client = create_app({**env, "WEBHOOK_SECRET": f"{SECRET}, {OLD_SECRET}"}).test_client()
    assert post(client, SECRET).status_code == 200
    assert post(client, OLD_SECRET, data={**REPLY, "ReplyText": "other"}).status_code == 200
    response = post(client, "not-one-of-the-secrets")
    assert response.status_code == 401 and response.get_json()["error"]


def test_every_listed_secret_is_scrubbed_from_events(env, redis):
    client = create_app({**env, "WEBHOOK_SECRET": f"{SECRET},{OLD_SECRET}"}).test_client()
    reply_url = f"https://example.com/in?token={OLD_SECRET}&again={SECRET}"
    assert post(client, OLD_SECRET, data={**REPLY, "ReplyURL": reply_url}).status_code == 200
    stored = redis.lrange("smshooks:inbox", 0, -1)[0].decode()
    assert OLD_SECRET not in stored and SECRET not in stored
    assert json.loads(stored)["raw"]["ReplyURL"] == "https://example.com/in?token=[secret]&again=[secret]"


@pytest.mark.parametrize(
    "value, message",
    [
        (f"{SECRET},short", "secret 2 of 2 is 5"),
        (" , ", "holds no secret"),
    ],
)
def test_bad_secret_lists_are_refused_at_start(value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"WEBHOOK_SECRET": value})


def test_allow_list_refuses_other_addresses_with_403(env, redis):
    client = create_app({**env, "ALLOWED_IPS": "10.0.0.0/8, 2001:db8::/32"}).test_client()
    refused = post(client, remote="192.0.2.7")
    assert refused.status_code == 403
    assert "192.0.2.7" in refused.get_json()["error"] and "ALLOWED_IPS" in refused.get_json()["error"]
    assert redis.llen("smshooks:inbox") == 0
    assert post(client, remote="10.20.30.40").status_code == 200
    assert post(client, remote="2001:db8::5", data={**REPLY, "ReplyText": "v6"}).status_code == 200


def test_allow_list_still_requires_the_secret(env, redis):
    client = create_app({**env, "ALLOWED_IPS": "127.0.0.1"}).test_client()
    assert post(client, token=None).status_code == 401


def test_forwarded_for_is_ignored_without_trusted_proxies(env, redis):
    client = create_app({**env, "ALLOWED_IPS": "203.0.113.0/24"}).test_client()
    response = post(client, remote="198.51.100.1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 403  # anyone can write that header


def test_one_trusted_proxy_takes_the_address_it_appended(env, redis):
    # Heroku's router appends the client's address to whatever X-Forwarded-For the client sent.
    client = create_app({**env, "ALLOWED_IPS": "203.0.113.0/24", "TRUSTED_PROXY_COUNT": "1"}).test_client()
    ok = post(client, remote="10.1.1.1", headers={"X-Forwarded-For": "192.0.2.66, 203.0.113.9"})
    assert ok.status_code == 200, ok.data
    spoofed = post(client, remote="10.1.1.1", headers={"X-Forwarded-For": "203.0.113.9, 192.0.2.66"})
    assert spoofed.status_code == 403
    assert "192.0.2.66" in spoofed.get_json()["error"]


def test_bad_allow_list_is_refused_at_start():
    with pytest.raises(ConfigError, match="ALLOWED_IPS .* got 'ten.0.0.1'"):
        Settings.from_env({"ALLOWED_IPS": "10.0.0.0/8, ten.0.0.1"})


def test_failed_authentications_are_throttled_but_a_right_secret_never_is(env, redis):
    client = create_app({**env, "AUTH_FAIL_LIMIT": "3"}).test_client()
    for _ in range(3):
        assert post(client, token="wrong-wrong-wrong-wrong", remote="192.0.2.1").status_code == 401
    throttled = post(client, token="wrong-wrong-wrong-wrong", remote="192.0.2.1")
    assert throttled.status_code == 429
    assert throttled.get_json()["error"].startswith("too many failed authentications")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert post(client, token=None, remote="192.0.2.1").status_code == 429  # no secret at all counts too
    assert post(client, remote="192.0.2.1").status_code == 200  # the provider, from the same address
    assert (
        post(client, token="wrong-wrong-wrong-wrong", remote="192.0.2.2").status_code == 401
    )  # others: their own count
    assert 0 < redis.ttl("smshooks:authfail:192.0.2.1") <= 60


def test_throttle_answers_red_oxygen_in_html(env, redis):
    client = create_app({**env, "AUTH_FAIL_LIMIT": "1"}).test_client()
    for expected in (401, 429):
        response = client.post("/redoxygen/reply?token=wrong-wrong-wrong", data=REPLY)
        assert response.status_code == expected
    assert b"<RESULT>100</RESULT><MESSAGE>too many failed authentications" in response.data


def test_throttle_fails_open_when_redis_is_down(env):
    client = create_app(
        {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "AUTH_FAIL_LIMIT": "1"}
    ).test_client()
    for _ in range(3):
        assert post(client, token="wrong-wrong-wrong-wrong").status_code == 401
    stored = post(client)
    assert stored.status_code == 503 and int(stored.headers["Retry-After"]) > 0


def test_ipv6_failures_count_per_64(env, redis):
    client = create_app({**env, "AUTH_FAIL_LIMIT": "2"}).test_client()
    statuses = [
        post(client, token="wrong-wrong-wrong-wrong", remote=f"2001:db8:1:2::{n}").status_code for n in range(1, 4)
    ]
    assert statuses == [401, 401, 429]  # three addresses, one /64
    assert post(client, token="wrong-wrong-wrong-wrong", remote="2001:db8:1:3::1").status_code == 401


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forwarded=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_any_forwarded_for_behind_a_proxy_is_never_a_5xx(env, redis, forwarded):
    app = create_app({**env, "ALLOWED_IPS": "203.0.113.0/24", "TRUSTED_PROXY_COUNT": "2", "AUTH_FAIL_LIMIT": "0"})
    response = post(app.test_client(), remote="10.0.0.1", headers={"X-Forwarded-For": forwarded})
    assert response.status_code in (200, 403), response.data
    assert response.get_json()["error" if response.status_code == 403 else "accepted"] is not None
