"""The Overview page: real callbacks and a real worker run, then the page, with and without its parts."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SECRET, run_worker
from tests.console.conftest import API_TOKEN, CONSOLE, sign_in
from tests.digitaleo_standin import DigitaleoStandIn
from tests.redoxygen_samples import MESSAGE_1, MESSAGE_2
from webhooks import create_app
from webhooks.config import Settings
from webhooks.pipeline.failures import failed
from webhooks.pipeline.queueing import queue_for
from webhooks.providers.digitaleo import sync as digitaleo_sync
from webhooks.providers.digitaleo.api import DigitaleoClient
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.telemetry import live

RECEIPT = f"/redoxygen/receipt?token={SECRET}"
JSON = {"Accept": "application/json"}


def signed_in(env):
    client = create_app({**env, **CONSOLE}).test_client()
    assert sign_in(client).status_code == 302
    return client


def cell_row(html: str, *cells: str) -> bool:
    """A table row holding these cells in this order."""
    pattern = r"<tr>\s*" + r"\s*".join(f"<td>{re.escape(c)}</td>" for c in cells)
    return re.search(pattern, html) is not None


def test_the_overview_shows_callbacks_events_inbox_handlers_and_health(console, redis, env):
    assert console.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    assert console.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200  # a duplicate
    assert console.post("/redoxygen/receipt", json=MESSAGE_2, headers=JSON).status_code == 401
    assert console.post(RECEIPT, json=MESSAGE_2, headers=JSON).status_code == 200
    html = console.get("/console/").get_data(as_text=True)
    assert '<svg class="chart"' in html and 'data-outcome="accepted"' in html and 'data-outcome="refused:401"' in html
    assert cell_row(html, "redoxygen", "accepted", "2")
    assert cell_row(html, "redoxygen", "duplicate", "1")
    assert cell_row(html, "redoxygen", "refused:401", "1")
    assert cell_row(html, "receipt", "delivered", "redoxygen", "1", "1")
    assert cell_row(html, "receipt", "failed", "redoxygen", "1", "1")
    # Two events wait in the inbox, the oldest for a moment.
    assert re.search(r'<div class="figure">2</div>\s*<div class="muted">oldest waiting [0-9.]+ s', html), html
    assert '<div class="figure">up</div><div class="muted">sqlite: SELECT 1 in' in html
    assert "PING" in html

    run_worker(env)  # the database handler stores both events
    html = console.get("/console/").get_data(as_text=True)
    assert "nothing waiting" in html
    assert cell_row(html, "database", "1", "0", "0")


def chart(html: str, provider: str = "") -> str:
    """The chart (figure) of one provider, or of every provider together."""
    found = re.search(rf'<figure class="callbacks-chart" data-provider="{provider}">(.*?)</figure>', html, re.S)
    assert found, f"no chart for {provider or 'every provider'}"
    return found.group(1)


def legend(figure: str) -> dict[str, int]:
    """The chart's legend: outcome -> callbacks in the hour."""
    keys = re.findall(r'<span class="key" data-outcome="([^"]+)">.*?<span class="n">(\d+)</span>', figure)
    return {outcome: int(n) for outcome, n in keys}


def drawn(figure: str) -> set[str]:
    """The outcomes the chart's bars are stacked from."""
    return set(re.findall(r'<rect [^>]*data-outcome="([^"]+)"', figure))


def test_the_chart_splits_refusals_by_reason_and_callbacks_by_provider(console, redis, redis_server):
    smsc = f"/smsc/callback?token={SECRET}"
    redis_server.stop()  # first: a restarted redis-server of the tests' own keeps nothing
    try:
        assert console.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 503  # counted in this process
    finally:
        redis_server.start()
    assert console.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    assert console.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200  # a duplicate
    assert console.post("/redoxygen/receipt", json=MESSAGE_2, headers=JSON).status_code == 401
    assert console.post(RECEIPT, json=MESSAGE_2, headers=JSON).status_code == 200
    assert console.post("/smsc/callback", data={"id": "1"}, headers=JSON).status_code == 401
    assert console.post(smsc, data={"id": "1", "status": "x"}, headers=JSON).status_code == 400
    assert console.post(smsc, data=b"{", content_type="text/csv", headers=JSON).status_code == 415
    assert live.pending() == 0  # the 503 reached Redis with a later callback's count
    html = console.get("/console/").get_data(as_text=True)

    everyone = chart(html)
    assert "Every provider: 8 in the hour" in everyone
    assert legend(everyone) == {
        "accepted": 2,
        "duplicate": 1,
        "refused:400": 1,
        "refused:401": 2,
        "refused:415": 1,
        "503": 1,
    }
    assert drawn(everyone) == set(legend(everyone))
    assert "refused 401: secret wrong or missing: " in everyone and "503: Redis was down: " in everyone

    redoxygen = chart(html, "redoxygen")
    assert "redoxygen: 5 in the hour" in redoxygen
    assert legend(redoxygen) == {"accepted": 2, "duplicate": 1, "refused:401": 1, "503": 1}
    assert drawn(redoxygen) == {"accepted", "duplicate", "refused:401", "503"}
    smsc_chart = chart(html, "smsc")
    assert "smsc: 3 in the hour" in smsc_chart
    assert legend(smsc_chart) == {"refused:400": 1, "refused:401": 1, "refused:415": 1}
    assert drawn(smsc_chart) == {"refused:400", "refused:401", "refused:415"}
    # A bar's title names its minute's numbers, refusals by status.
    assert re.search(r"<title>\d\d:\d\d UTC: [^<]*1 refused:401[^<]*</title>", redoxygen)


def test_with_one_provider_there_is_one_chart_and_without_callbacks_it_says_so(console, redis):
    html = console.get("/console/").get_data(as_text=True)
    assert "No callbacks in the last hour." in chart(html) and html.count("<figure") == 1
    assert console.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    html = console.get("/console/").get_data(as_text=True)
    assert legend(chart(html)) == {"accepted": 1} and html.count("<figure") == 1


def test_a_handlers_last_error_is_shown_scrubbed(redis, env, monkeypatch):
    # A handler that fails for real, with the secret in its error, as a careless library might.
    leaky = "tests.support_handlers:Leaky"
    leak = f"https://hooks.example.com/{SECRET}/in"
    env = {**env, "HANDLERS": f"database,{leaky}", "LEAK": leak, "RETRY_INTERVALS": "none"}
    client = signed_in(env)
    assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)  # a worker's secrets come from its environment
    run_worker(env)
    [job] = failed(queue_for(redis, "smshooks"))
    assert SECRET in job.error  # the raw error names it: what the console shows must not
    errors = live.last_errors(redis)
    assert errors[leaky]["outcome"] == "failure"
    assert errors[leaky]["error"] == "ConnectionError: POST https://hooks.example.com/[secret]/in failed"
    html = client.get("/console/").get_data(as_text=True)
    assert cell_row(html, leaky, "0", "0", "1")
    assert "ConnectionError: POST https://hooks.example.com/[secret]/in failed" in html
    assert SECRET not in html


@pytest.fixture
def digitaleo():
    standin = DigitaleoStandIn().start()
    yield standin
    standin.stop()


def digitaleo_line(html: str) -> str:
    found = re.search(r'<p class="digitaleo">(.*?)</p>', html, re.S)
    assert found, "no Digitaleo line on the page"
    return " ".join(found.group(1).split())


def test_digitaleo_status_requests_are_shown_against_the_budget_and_token_requests_beside_it(redis, env, digitaleo):
    env = {**env, **digitaleo.env()}
    client = signed_in(env)
    settings, config = Settings.from_env(env), DigitaleoConfig.from_env(env)
    assert digitaleo_line(client.get("/console/").get_data(as_text=True)).startswith(
        "0 status request(s); Digitaleo's guidance is at most 10 status requests per SMS sent, and no send "
        "was recorded through /api/v1/sent in the last hour, so the budget is unknown."
    )
    # One send recorded, its status changes at Digitaleo, the platform pings, and the worker's sync job asks the
    # API (a token request, then GET /status?action=queue) through the real client and the stand-in.
    sent = {"provider": "digitaleo", "response": {"id": "121905361", "recipient": "+33696300056"}}
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    assert client.post("/api/v1/sent", json=sent, headers=bearer).status_code == 200
    digitaleo.add_status("121905361", "on")
    digitaleo.add_status("121905361", "ok")
    assert client.get(f"/digitaleo/ping?token={SECRET}&sms_id=121905361").status_code == 200
    assert digitaleo_sync.run(redis, queue_for(redis, settings.queue_name), settings, config) == 2
    assert (digitaleo.calls["token"], digitaleo.api_calls()) == (1, 1)
    html = client.get("/console/").get_data(as_text=True)
    line = digitaleo_line(html)
    assert line.startswith(
        "1 status request(s) against a budget of 10 (10 status requests per SMS sent; 1 sent recorded through "
        "/api/v1/sent). 1 OAuth token request(s) besides, not counted against the budget."
    ), line
    assert "over budget" not in line
    assert cell_row(html, "status", "ok", "1") and cell_row(html, "token", "ok", "1")

    # Ten more status requests (the token is shared through Redis: no new token request): over the budget.
    api = DigitaleoClient(config, redis)
    for _ in range(5):
        api.get("status", {"action": "queue", "limit": 10})
        api.get("smsstatus", {"smsId": "121905361"})
    assert (digitaleo.calls["token"], digitaleo.api_calls()) == (1, 11)
    html = client.get("/console/").get_data(as_text=True)
    line = digitaleo_line(html)
    assert line.startswith("11 status request(s) against a budget of 10 (") and "over budget" in line, line
    assert "1 OAuth token request(s) besides" in line
    assert cell_row(html, "status", "ok", "6") and cell_row(html, "smsstatus", "ok", "5")


def test_without_the_database_handler_the_page_says_so(redis, env):
    client = signed_in({**env, "HANDLERS": "log"})
    response = client.get("/console/")
    assert response.status_code == 200
    assert '<div class="figure">not enabled</div><div class="muted">`database` is not in HANDLERS' in response.get_data(
        as_text=True
    )


def test_with_redis_down_the_page_says_so_plainly(console, redis, redis_server):
    assert console.get("/console/").status_code == 200
    redis_server.stop()
    try:
        response = console.get("/console/")
    finally:
        redis_server.start()
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Redis cannot be reached" in html and '<div class="figure bad">down</div>' in html
    assert "sqlite: SELECT 1 in" in html  # the database's health does not depend on Redis


def test_the_page_refreshes_its_live_section_only(console, redis):
    html = console.get("/console/").get_data(as_text=True)
    assert '<section id="live" data-refresh="15">' in html
    script = console.get("/console/static/console.js").get_data(as_text=True)
    assert 'getElementById("live")' in script and "fetch(" in script
