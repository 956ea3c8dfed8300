"""The OpenAPI document describes what the app does: schemathesis drives every operation through WSGI."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import ignored_auth

from tests.conftest import SECRET
from tests.web import openapi_hooks
from webhooks import create_app
from webhooks.web.openapi import PATHS, document

JSON = {"Accept": "application/json"}
API_TOKEN = "api-token-for-openapi-tests-0123"  # API_TOKENS, so the API's operation is fuzzed past its token too


@pytest.fixture
def unthrottled_app(env):
    # schemathesis probes every operation without the secret, far more than AUTH_FAIL_LIMIT a minute.
    return create_app({**env, "AUTH_FAIL_LIMIT": "0", "API_TOKENS": API_TOKEN})


# The document the app serves, loaded at import; requests go to the `app` fixture through WSGI.
# (schemathesis.pytest.from_fixture does not work with pytest 9: it reads a private node attribute.)
# The checks' settings are those of the run from outside (tests/web/schemathesis.toml): 413 is a rejection too.
CHECKS = tomllib.loads((Path(__file__).parent / "schemathesis.toml").read_text())["checks"]
schema = schemathesis.openapi.from_dict(document(), config=SchemathesisConfig.from_dict({"checks": CHECKS}))


def _drops_authorization(case) -> bool:
    """The coverage phase's case without the bearer header: it must stay without (and get its 401)."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return (getattr(data, "parameter", None) or "").lower() == "authorization"


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case, unthrottled_app):
    app = unthrottled_app
    # Authenticated, so the fuzzing reaches the parsers; the auth answers are tested on their own.
    case.query = {**(case.query or {}), "token": SECRET}
    if not _drops_authorization(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {API_TOKEN}"}  # the API's (/api/v1/*)
    case.operation.schema.app = app  # also for the probes some checks send on their own
    # Every check, the data checks included: data the document calls valid is accepted, data it calls
    # invalid is refused, every answer is as documented. Only ignored_auth is off: it probes a "wrong"
    # basic password while our ?token= stays right, and either one is enough, so its 200 is correct
    # (the run from outside, with schemathesis' own auth, checks it; so do webhook_cases.py, test_access.py).
    # An XML "wrong type" that is valid text once sent is dropped by openapi_hooks.filter_failure.
    case.call_and_validate(app=app, headers=JSON, excluded_checks=[ignored_auth])


def test_xml_type_mutations_that_arrive_as_text_are_not_failures():
    operation = schema["/smsc/callback"]["POST"]
    case = operation.Case(media_type="text/xml; charset=utf-8", body={})
    as_text = b"<data><id>0</id><phone>0</phone><status>null</status></data>"  # `status: null`, sent as text
    missing = b"<data><id>0</id><phone>0</phone></data>"  # neither a status nor `mes`: really invalid
    assert openapi_hooks.xml_negation_vanished(case, as_text)
    assert not openapi_hooks.xml_negation_vanished(case, missing)
    assert not openapi_hooks.xml_negation_vanished(case, b"<data><id>")


def test_document_is_served_without_the_secret(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert set(PATHS) <= set(document["paths"])
    assert {"/redoxygen/receipt", "/redoxygen/reply", "/healthz"} <= set(document["paths"])
    assert SECRET not in response.get_data(as_text=True)


def test_every_route_is_documented(app):
    # Flask's `<path:message_id>` is OpenAPI's `{message_id}`. The console's pages are for people, not
    # programs (HTML behind a sign-in, docs/console.md): the document describes the rest.
    rules = [r.rule for r in app.url_map.iter_rules() if r.endpoint != "static" and not r.rule.startswith("/console")]
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule) for rule in rules}
    assert routes <= set(PATHS), f"routes missing from PATHS in webhooks/web/openapi/: {sorted(routes - set(PATHS))}"


def test_smscs_default_charset_reads_every_byte_as_browsers_do(client, redis):
    # What the run from outside found: SMSC's default windows-1251 has no character for 0x98, so a
    # query string the document allows was a 400. It is read as U+0098, as WHATWG's windows-1251 reads it.
    response = client.get(f"/smsc/callback?token={SECRET}&id=1&phone=79990001122&mes=%98%C0", headers=JSON)
    assert response.status_code == 200, response.data
    assert json.loads(redis.lrange("smshooks:inbox", 0, -1)[0])["text"] == "\x98А"
