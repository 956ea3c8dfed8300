"""Behaviour every provider endpoint shares; a provider's test class subclasses `WebhookCases`.

Subclasses set `url` and `valid_body()`. Requests ask for JSON (Accept), so every
error is checked as JSON; providers with their own answer format test it on top.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from tests.conftest import SECRET
from webhooks import create_app

JSON = {"Accept": "application/json"}


class WebhookCases:
    url: str = ""

    def valid_body(self) -> dict[str, Any]:
        """kwargs for the test client's `post` that the endpoint accepts."""
        raise NotImplementedError

    def post(self, client, query: str = f"?token={SECRET}", headers=None, **kwargs):
        return client.post(self.url + query, headers={**JSON, **(headers or {})}, **kwargs)

    def assert_json_error(self, response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.data
        assert response.mimetype == "application/json"
        body = response.get_json()
        assert body["error"], body
        return body

    def test_valid_callback_is_accepted(self, client, redis):
        response = self.post(client, **self.valid_body())
        assert response.status_code == 200, response.data
        assert response.get_json()["accepted"] >= 1
        assert redis.llen("smshooks:inbox") == response.get_json()["accepted"]

    def test_missing_secret_is_401(self, client, redis):
        body = self.assert_json_error(self.post(client, query="", **self.valid_body()), 401)
        assert SECRET not in json.dumps(body)
        assert redis.llen("smshooks:inbox") == 0

    def test_wrong_secret_is_401(self, client, redis):
        self.assert_json_error(self.post(client, query="?token=wrong", **self.valid_body()), 401)
        assert redis.llen("smshooks:inbox") == 0

    def test_secret_as_basic_auth_password(self, client):
        auth = base64.b64encode(f"redoxygen:{SECRET}".encode()).decode()
        response = self.post(client, query="", headers={"Authorization": f"Basic {auth}"}, **self.valid_body())
        assert response.status_code == 200, response.data

    @pytest.mark.parametrize(
        "header",
        [
            "Basic \u00e9\u00e9\u00e9",
            "Basic !!notbase64",
            "Bearer x",
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        ],
    )
    def test_malformed_authorization_is_401_not_500(self, client, header):
        self.assert_json_error(self.post(client, query="", headers={"Authorization": header}, **self.valid_body()), 401)

    def test_address_outside_allow_list_is_403(self, env, redis):
        client = create_app({**env, "ALLOWED_IPS": "192.0.2.0/24"}).test_client()
        body = self.assert_json_error(self.post(client, **self.valid_body()), 403)
        assert "ALLOWED_IPS" in body["error"]
        assert redis.llen("smshooks:inbox") == 0

    def test_repeated_wrong_secrets_are_429_but_the_right_one_passes(self, env, redis):
        client = create_app({**env, "AUTH_FAIL_LIMIT": "2"}).test_client()
        statuses = [self.post(client, query="?token=wrong", **self.valid_body()).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]
        response = self.assert_json_error(self.post(client, query="?token=wrong", **self.valid_body()), 429)
        assert response["error"]
        assert self.post(client, **self.valid_body()).status_code == 200

    def test_no_secret_configured_accepts_callbacks(self, env, redis):
        open_client = create_app({**env, "WEBHOOK_SECRET": ""}).test_client()
        assert self.post(open_client, query="", **self.valid_body()).status_code == 200

    def test_body_over_64k_is_413(self, client, redis):
        response = self.post(client, data=b"x=" + b"a" * 70_000, content_type="application/x-www-form-urlencoded")
        self.assert_json_error(response, 413)
        assert redis.llen("smshooks:inbox") == 0

    def test_chunked_body_over_64k_is_413_not_truncated(self, client, redis):
        # No Content-Length: Werkzeug would cut the stream at the limit and hand the view a truncated body.
        body = b'{"pad": "' + b"a" * 70_000 + b'"}'
        response = client.post(
            self.url + f"?token={SECRET}",
            headers=JSON,
            input_stream=io.BytesIO(body),
            content_type="application/json",
            environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
        )
        self.assert_json_error(response, 413)

    def test_garbage_json_is_400(self, client):
        body = self.assert_json_error(self.post(client, data=b"{not json", content_type="application/json"), 400)
        assert "JSON" in body["fields"]["_body"][0]

    def test_deep_json_is_400(self, client):
        self.assert_json_error(
            self.post(client, data=b"[" * 100_00 + b"]" * 100_00, content_type="application/json"), 400
        )

    def test_huge_number_is_400(self, client):  # past Python's int digit limit
        response = self.post(client, data=b'{"n": ' + b"9" * 5000 + b"}", content_type="application/json")
        self.assert_json_error(response, 400)

    def test_invalid_utf8_is_400(self, client):
        self.assert_json_error(self.post(client, data=b'{"a": "\xff\xfe"}', content_type="application/json"), 400)

    def test_xml_entities_are_refused(self, client):
        bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>'
        body = self.assert_json_error(self.post(client, data=bomb, content_type="application/xml"), 400)
        assert "refused" in body["fields"]["_body"][0]

    def test_unreadable_content_type_is_415(self, client):
        self.assert_json_error(self.post(client, data=b"\x00\x01binary", content_type="image/png"), 415)

    def test_unknown_charset_is_400_naming_it(self, client):
        for content_type in ("application/x-www-form-urlencoded", "application/json", "application/xml"):
            response = self.post(client, data=b"a=b", content_type=f"{content_type}; charset=nope-42")
            body = self.assert_json_error(response, 400)
            assert "nope-42" in body["fields"]["_body"][0], body

    def test_wrong_method_is_json_405(self, client):
        response = client.put(self.url + f"?token={SECRET}")
        self.assert_json_error(response, 405)

    def test_redis_down_is_503_with_retry_after(self, env):
        from tests.conftest import free_port

        dead = create_app({**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}).test_client()
        response = self.post(dead, **self.valid_body())
        self.assert_json_error(response, 503)
        assert int(response.headers["Retry-After"]) > 0
