"""The OpenAPI document describes what the app does: schemathesis drives every operation through WSGI."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from tests.conftest import SECRET
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
schema = schemathesis.openapi.from_dict(document())


def _drops_authorization(case) -> bool:
    """The coverage phase's case without the bearer header: it must stay without (and get its 401)."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return (getattr(data, "parameter", None) or "").lower() == "authorization"


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case, unthrottled_app):
    app = unthrottled_app
    # Authenticated, so the fuzzing reaches the parsers; the auth answers are tested on their own.
    case.query = {**(case.query or {}), "token": SECRET}
    if not _drops_authorization(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {API_TOKEN}"}  # the API's (/api/v1/*)
    case.operation.schema.app = app  # also for the probes some checks send on their own
    # ignored_auth probes a "wrong" basic password while our ?token= stays right: either one is enough,
    # so its 200 is correct. Authentication has tests of its own (webhook_cases.py, test_access.py).
    if case.media_type in ("application/xml", "text/xml"):
        # XML carries only text, and not every character: a "wrong type" (null, 5) arrives as the valid
        # text "null", "5", and control characters make the document invalid. So only: never a 5xx.
        case.call_and_validate(app=app, headers=JSON, checks=[not_a_server_error])
    else:
        # The document describes what providers send; the parsers are lenient beyond it on purpose
        # (forms repeat fields, providers add some), and stricter where it cannot say (a date's
        # format, a checksum). So whether data the generator calls valid or invalid is accepted is
        # not checked; what is: never a 5xx, and every answer (4xx included) as the document says.
        case.call_and_validate(
            app=app, headers=JSON, excluded_checks=[ignored_auth, negative_data_rejection, positive_data_acceptance]
        )


def test_document_is_served_without_the_secret(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert set(PATHS) <= set(document["paths"])
    assert {"/redoxygen/receipt", "/redoxygen/reply", "/healthz"} <= set(document["paths"])
    assert SECRET not in response.get_data(as_text=True)


def test_every_route_is_documented(app):
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes <= set(PATHS), f"routes missing from webhooks/openapi.py: {sorted(routes - set(PATHS))}"
