"""Who may see the console: off without its settings, sign-in only with a console password, CSRF, session expiry,
cookie flags over real HTTP, the shared failed-authentication throttle, and no secret on any page."""

from __future__ import annotations

import base64
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.conftest import SECRET, free_port, process_env, run_worker, venv_bin
from tests.console.conftest import API_TOKEN, CONSOLE, PASSWORD, SECRET_KEY, csrf_token, http_sign_in, sign_in
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks import create_app
from webhooks.cli.release import problems
from webhooks.config import ConfigError
from webhooks.console.auth import SIGN_IN_FLOOR
from webhooks.pipeline.failures import failed
from webhooks.pipeline.queueing import queue_for

PAGES = [
    "/console/",
    "/console/messages",
    "/console/messages?q=%2B61409000000",
    "/console/messages/redoxygen/123",
    "/console/events",
    "/console/refused",
    "/console/failures",
]
COOKIE = "smshooks_console"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def receipt(sms_id: int = 123, **fields) -> dict:
    return {"Messages": {"Count": 1, "1": {**MESSAGE_1, "SMSId": sms_id, **fields}}}


def signed_in(client) -> bool:
    return client.get("/console/").status_code == 200


class Forms(HTMLParser):
    """The links and the POST forms (action, hidden fields) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form" and (a.get("method") or "get").lower() == "post":
            self.forms.append({"action": a.get("action") or "", "fields": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def parse(html: str) -> Forms:
    forms = Forms()
    forms.feed(html)
    return forms


# --------------------------------------------------------------------------- off, and refusing to start


def test_without_its_settings_the_console_is_off_and_says_which_turn_it_on(client):
    for path in ["/console", "/console/", "/console/login", "/console/failures"]:
        response = client.get(path)
        assert response.status_code == 404, path
        error = response.get_json()["error"]
        assert "CONSOLE_PASSWORD" in error and "SECRET_KEY" in error


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"CONSOLE_PASSWORD": PASSWORD}, "SECRET_KEY is not set"),
        ({"CONSOLE_PASSWORD": "short-one", "SECRET_KEY": SECRET_KEY}, "at least 12 characters"),
        ({"CONSOLE_PASSWORD": SECRET, "SECRET_KEY": SECRET_KEY}, "is a WEBHOOK_SECRET"),
        ({"CONSOLE_USERS": f"alice:{SECRET}", "SECRET_KEY": SECRET_KEY}, "is a WEBHOOK_SECRET"),
        ({"CONSOLE_PASSWORD": PASSWORD, "SECRET_KEY": "too-short"}, "SECRET_KEY must be at least 32"),
    ],
)
def test_the_app_and_smshooks_release_refuse_a_bad_console_setting(env, settings, says):
    env = {**env, **settings}
    with pytest.raises(ConfigError) as caught:
        create_app(env)
    _, found = problems(env)
    for message in [str(caught.value), *found]:
        assert SECRET not in message and PASSWORD not in message
    assert says in str(caught.value)
    assert any(says in problem for problem in found), found


def test_smshooks_release_fails_with_a_console_password_and_no_secret_key(env):
    done = subprocess.run(
        [venv_bin("smshooks"), "release"],
        env=process_env({**env, "CONSOLE_PASSWORD": PASSWORD}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


# --------------------------------------------------------------------------- signing in


@pytest.mark.parametrize(
    "query, headers",
    [
        ("", {}),
        (f"?token={SECRET}", {}),  # the callbacks' secret, in the query
        ("", basic("admin", SECRET)),  # and as the basic-auth password
        ("", basic("admin", PASSWORD)),  # even the console's own password: only the sign-in form opens it
        ("", {"Authorization": f"Bearer {API_TOKEN}"}),  # the API's token
        (f"?token={API_TOKEN}", {}),
    ],
)
def test_every_page_asks_for_sign_in_and_no_other_credential_opens_it(console_env, query, headers):
    client = create_app(console_env).test_client()
    for path in PAGES:
        url = path + (("&" if "?" in path else "?") + query[1:] if query else "")
        response = client.get(url, headers=headers)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/console/login?next=")
    assert not signed_in(client)


@pytest.mark.parametrize("password", [SECRET, API_TOKEN, SECRET_KEY, PASSWORD.upper(), ""])
def test_only_the_console_password_signs_in(console_env, password):
    client = create_app(console_env).test_client()
    answer = sign_in(client, password)
    assert answer.status_code in (400, 401)  # an empty password is a 400: the form says it is required
    assert not signed_in(client)
    assert sign_in(client).status_code == 302
    assert signed_in(client)


def test_sign_in_goes_back_to_the_page_asked_for_but_never_elsewhere(console_env):
    client = create_app(console_env).test_client()
    token = csrf_token(client.get("/console/login").get_data(as_text=True))
    form = {"username": "admin", "password": PASSWORD, "csrf_token": token}
    assert client.post("/console/login?next=/console/events", data=form).headers["Location"] == "/console/events"
    client = create_app(console_env).test_client()
    token = csrf_token(client.get("/console/login").get_data(as_text=True))
    answer = client.post("/console/login?next=//evil.example/console", data={**form, "csrf_token": token})
    assert answer.headers["Location"] == "/console/"


# --------------------------------------------------------------------------- CSRF


def test_sign_in_without_a_csrf_token_or_with_another_sessions_is_400(console_env):
    app = create_app(console_env)
    other = app.test_client()
    others_token = csrf_token(other.get("/console/login").get_data(as_text=True))
    client = app.test_client()
    client.get("/console/login")
    form = {"username": "admin", "password": PASSWORD}
    assert client.post("/console/login", data=form).status_code == 400
    assert client.post("/console/login", data={**form, "csrf_token": others_token}).status_code == 400
    assert client.post("/console/login", data={**form, "csrf_token": "forged"}).status_code == 400
    assert not signed_in(client)


def test_sign_out_without_a_csrf_token_or_with_another_sessions_is_400(console_env):
    app = create_app(console_env)
    other = app.test_client()
    assert sign_in(other).status_code == 302
    others_token = csrf_token(other.get("/console/").get_data(as_text=True))
    client = app.test_client()
    assert sign_in(client).status_code == 302
    assert client.post("/console/logout").status_code == 400
    assert client.post("/console/logout", data={"csrf_token": others_token}).status_code == 400
    assert signed_in(client), "a refused sign-out changes nothing"
    mine = csrf_token(client.get("/console/").get_data(as_text=True))
    assert client.post("/console/logout", data={"csrf_token": mine}).status_code == 302
    assert not signed_in(client)
    assert signed_in(other)


SLACK_TOKEN = "slackHookToken0123456789abcdef"
SMSC_PASSWORD = "smsc-account-password-0123"


@pytest.fixture
def failed_slack_env(env):
    """Settings whose Slack cannot be reached: a receipt's Slack job fails at once (no retries)."""
    return {
        **env,
        **CONSOLE,
        "HANDLERS": "database,slack",
        "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/services/T0/B0/{SLACK_TOKEN}",
        "SLACK_RETRY_INTERVALS": "none",
    }


def test_replay_without_a_csrf_token_or_with_another_sessions_is_400_and_replays_nothing(failed_slack_env, redis):
    app = create_app(failed_slack_env)
    assert app.test_client().post(f"/redoxygen/receipt?token={SECRET}", json=receipt()).status_code == 200
    run_worker(failed_slack_env)
    queue = queue_for(redis, "smshooks")
    [job] = failed(queue)
    other = app.test_client()
    assert sign_in(other).status_code == 302
    others_token = csrf_token(other.get("/console/failures").get_data(as_text=True))
    client = app.test_client()
    assert sign_in(client).status_code == 302
    forms = [
        f for f in parse(client.get("/console/failures").get_data(as_text=True)).forms if "logout" not in f["action"]
    ]
    assert forms, "the Failures page has a replay form"
    for form in forms:
        fields = {k: v for k, v in form["fields"].items() if k != "csrf_token"}
        action = urljoin("/console/failures", form["action"])
        assert client.post(action, data=fields).status_code == 400, action
        assert client.post(action, data={**fields, "csrf_token": others_token}).status_code == 400, action
    assert [j.id for j in failed(queue)] == [job.id], "the failed job is still there, not replayed"
    assert len(queue) == 0


# --------------------------------------------------------------------------- session expiry


def forged_session(app, issued_at: int, since: int | None = None) -> str:
    """The session cookie the app itself would have signed at `issued_at` for an admin signed in at `since`."""
    serializer = app.session_interface.get_signing_serializer(app)
    signer = serializer.make_signer(serializer.salt)
    signer.get_timestamp = lambda: issued_at  # itsdangerous's clock: the signature carries this time
    data = {"user": "admin", "since": issued_at if since is None else since, "_permanent": True}
    return signer.sign(serializer.dump_payload(data)).decode()


def test_a_session_older_than_console_session_hours_is_refused(console_env):
    app = create_app({**console_env, "CONSOLE_SESSION_HOURS": "1"})
    now = int(time.time())
    fresh, stale = app.test_client(), app.test_client()
    fresh.set_cookie(COOKIE, forged_session(app, now - 3500), path="/console")
    stale.set_cookie(COOKIE, forged_session(app, now - 3700), path="/console")
    assert fresh.get("/console/").status_code == 200, "the forged cookie is what the app signs"
    answer = stale.get("/console/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/console/login")
    # Flask signs the cookie again on every page (and the overview reloads itself): a session kept
    # busy still ends CONSOLE_SESSION_HOURS after its sign-in.
    busy = app.test_client()
    busy.set_cookie(COOKIE, forged_session(app, now - 5, since=now - 3700), path="/console")
    answer = busy.get("/console/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/console/login")
    assert busy.get("/console/").status_code == 302, "the expired session is cleared, not renewed"
    other_key = create_app({**console_env, "SECRET_KEY": "another-secret-key-of-enough-length-42"})
    forged = app.test_client()
    forged.set_cookie(COOKIE, forged_session(other_key, now), path="/console")
    assert forged.get("/console/").status_code == 302, "a cookie signed with another key is refused"


# --------------------------------------------------------------------------- cookie flags, over real HTTP


def set_cookie(response) -> str:
    [cookie] = [c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}=")]
    return cookie


def test_the_cookie_is_httponly_lax_console_only_and_secure_behind_https(service):
    plain = requests.get(f"{service.base}/console/login", timeout=10)
    proxied = requests.get(
        f"{service.base}/console/login",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    for answer in (plain, proxied):
        flags = [part.strip().lower() for part in set_cookie(answer).split(";")]
        assert {"httponly", "samesite=lax", "path=/console"} <= set(flags), flags
    assert "secure" not in set_cookie(plain).lower()
    assert re.search(r";\s*Secure", set_cookie(proxied))

    session = http_sign_in(service)
    signed = session.get(f"{service.base}/console/", allow_redirects=False, timeout=10)
    assert signed.status_code == 200
    [cookie] = [c for c in session.cookies if c.name == COOKIE]
    assert cookie.path == "/console" and cookie.expires is not None
    assert 7 * 3600 < cookie.expires - time.time() <= 8 * 3600, "expires CONSOLE_SESSION_HOURS (8) after sign-in"


def test_x_forwarded_proto_from_an_untrusted_client_does_not_make_the_cookie_secure(console_env):
    response = create_app(console_env).test_client().get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in response.headers["Set-Cookie"]
    over_https = create_app(console_env).test_client().get("/console/login", base_url="https://localhost")
    assert "Secure" in over_https.headers["Set-Cookie"]


# --------------------------------------------------------------------------- the throttle


def test_past_auth_fail_limit_sign_in_is_429_even_with_the_right_password_until_the_window_passes(console_env, redis):
    client = create_app({**console_env, "AUTH_FAIL_LIMIT": "3"}).test_client()
    assert [sign_in(client, "wrong-password-guess").status_code for _ in range(4)] == [401, 401, 401, 429]
    refused = sign_in(client)
    assert refused.status_code == 429 and "too many failed sign-ins" in refused.get_data(as_text=True)
    assert not signed_in(client)
    [key] = redis.keys("smshooks:authfail:*")
    assert 0 < redis.ttl(key) <= 60
    redis.pexpire(key, 200)  # the minute's window, run out early
    time.sleep(0.3)
    assert sign_in(client).status_code == 302


def test_failed_sign_ins_and_failed_callbacks_share_one_counter(console_env, redis):
    client = create_app({**console_env, "AUTH_FAIL_LIMIT": "2"}).test_client()
    assert client.post("/redoxygen/receipt?token=wrong", json=receipt()).status_code == 401
    assert sign_in(client, "wrong-password-guess").status_code == 401
    assert sign_in(client, "wrong-password-guess").status_code == 429, "the callback's failure counted"
    redis.flushall()
    assert sign_in(client, "wrong-password-guess").status_code == 401
    assert sign_in(client, "wrong-password-guess").status_code == 401
    assert client.post("/redoxygen/receipt?token=wrong", json=receipt()).status_code == 429
    assert client.post(f"/redoxygen/receipt?token={SECRET}", json=receipt()).status_code == 200, (
        "a provider with the right secret is never throttled"
    )


def test_with_auth_fail_limit_0_callbacks_are_not_throttled_but_sign_ins_keep_a_floor(console_env, redis):
    client = create_app({**console_env, "AUTH_FAIL_LIMIT": "0"}).test_client()
    wrong = [client.post("/redoxygen/receipt?token=wrong", json=receipt()).status_code for _ in range(40)]
    assert set(wrong) == {401}, "AUTH_FAIL_LIMIT=0: callbacks are never throttled"
    assert not redis.keys("smshooks:authfail:*"), "nor counted"
    guesses = [sign_in(client, "wrong-password-guess").status_code for _ in range(SIGN_IN_FLOOR + 1)]
    assert guesses == [401] * SIGN_IN_FLOOR + [429]
    refused = sign_in(client)
    assert refused.status_code == 429 and "too many failed sign-ins" in refused.get_data(as_text=True)
    assert not signed_in(client)
    assert client.post("/redoxygen/receipt?token=wrong", json=receipt()).status_code == 401, "still not throttled"
    assert client.post(f"/redoxygen/receipt?token={SECRET}", json=receipt()).status_code == 200
    [key] = redis.keys("smshooks:authfail:*")
    redis.pexpire(key, 200)  # the minute's window, run out early
    time.sleep(0.3)
    assert sign_in(client).status_code == 302


# --------------------------------------------------------------------------- no secret on any page


@contextmanager
def slack_quoting(text: str) -> Iterator[str]:
    """A Slack stand-in that answers 500 with `text` in its body (an error page may quote anything): its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            body = f"no_service: {text}".encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/services/T0/B0/{SLACK_TOKEN}"
    finally:
        server.shutdown()
        server.server_close()


NAMES = {
    SECRET: "WEBHOOK_SECRET",
    API_TOKEN: "API_TOKENS",
    SECRET_KEY: "SECRET_KEY",
    PASSWORD: "CONSOLE_PASSWORD",
    SMSC_PASSWORD: "SMSC_PASSWORD",
    SLACK_TOKEN: "SLACK_WEBHOOK_URL's token",
}


def leaks(failed_slack_env, redis, monkeypatch, in_events: list[str], elsewhere: list[str]) -> list[str]:
    """Which secrets show on which page or API answer, after `in_events` went through accepted callbacks' fields
    and `elsewhere` through refused callbacks and a failed handler job's error."""
    with slack_quoting(" ".join(elsewhere)) as slack_url:
        env = {**failed_slack_env, "SLACK_WEBHOOK_URL": slack_url, "SMSC_PASSWORD": SMSC_PASSWORD}
        for name, value in env.items():  # as in a deployment: the web and the worker read their secrets from it
            monkeypatch.setenv(name, value)
        seen = every_page_after(env, in_events, elsewhere, redis)
    assert len(seen) >= len(PAGES) + 4
    return [f"{NAMES[secret]} on {url}" for url, body in seen.items() for secret in NAMES if secret in body]


def test_no_secret_appears_on_any_page_or_api_answer(failed_slack_env, redis, monkeypatch):
    # A provider's fields carry WEBHOOK_SECRET (Red Oxygen's ReplyURL); refusals and errors may quote any secret.
    found = leaks(failed_slack_env, redis, monkeypatch, [SECRET], [s for s in NAMES if s != SLACK_TOKEN])
    assert not found, "; ".join(found)


def test_a_providers_field_quoting_another_secret_is_not_shown(failed_slack_env, redis, monkeypatch):
    found = leaks(failed_slack_env, redis, monkeypatch, [API_TOKEN, SECRET_KEY, PASSWORD, SMSC_PASSWORD], [])
    assert not found, "; ".join(found)


def test_the_slack_webhook_urls_token_is_not_shown(failed_slack_env, redis, monkeypatch):
    found = leaks(failed_slack_env, redis, monkeypatch, [], [SLACK_TOKEN])
    assert not found, "; ".join(found)


def every_page_after(env: dict[str, str], in_events: list[str], elsewhere: list[str], redis) -> dict[str, str]:
    """Callbacks, refusals and a failed job quoting the secrets; then every console page (following every link)
    and every API answer, by URL."""
    client = create_app(env).test_client()
    fields, quoted = " ".join(in_events), " ".join(elsewhere)
    ok = f"/redoxygen/receipt?token={SECRET}"
    # Accepted callbacks whose fields quote secrets (Red Oxygen's reply carries its ReplyURL with ?token=).
    delivered = receipt(123, DestTn="+61409000000", ResultText=f"Delivered {fields}")
    assert client.post(ok, json=delivered).status_code == 200
    reply = {**REPLY, "DestTN": "61409000000", "ReplyText": f"my codes: {fields}"}
    assert client.post(f"/redoxygen/reply?token={SECRET}", json=reply).status_code == 200
    # Refused ones, with secrets in the query, the body and the headers.
    refused = [
        client.post("/redoxygen/receipt?token=wrong", json={"note": quoted}),
        client.post("/redoxygen/receipt", json={"note": quoted}, headers=basic("admin", SMSC_PASSWORD)),
        client.post(ok, data=f'{{"broken": "{quoted}"', content_type="application/json"),
        client.post(ok, data=quoted.encode(), content_type="application/x-unknown"),
        client.post(ok, data=b"x" * 70_000 + quoted.encode(), content_type="application/json"),
        client.post(f"/smsc/callback?token={SECRET}&md5=wrong&id=1&phone=79990000000&status=1"),
    ]
    assert {r.status_code for r in refused} <= {400, 401, 413, 415}, [r.status_code for r in refused]
    run_worker(env)  # the database takes both events; Slack answers 500 quoting the secrets: a failed job
    assert failed(queue_for(redis, "smshooks")), "a failed Slack job to show"

    assert sign_in(client).status_code == 302
    seen: dict[str, str] = {}
    todo = list(PAGES) + ["/console/messages?q=0409+000+000", "/console/messages/redoxygen/123"]
    while todo and len(seen) < 80:
        url = todo.pop(0)
        if url in seen:
            continue
        response = client.get(url)
        assert response.status_code < 500, url
        seen[url] = response.get_data(as_text=True)
        for link in parse(seen[url]).links:
            target = urljoin(url, link).partition("#")[0]
            if urlsplit(target).path.startswith("/console") and "/static/" not in target and target not in seen:
                todo.append(target)
    assert "slack" in seen["/console/failures"] and "Delivered" in seen["/console/messages/redoxygen/123"]
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    for url in ["/api/v1/messages/redoxygen/123", "/api/v1/events", "/api/v1/events?limit=1", "/openapi.json"]:
        response = client.get(url, headers=bearer)
        assert response.status_code < 500, url
        seen[f"api {url}"] = response.get_data(as_text=True)
    wrong = client.get("/api/v1/events", headers={"Authorization": f"Bearer {SECRET}"})
    seen["api with a wrong token"] = wrong.get_data(as_text=True)
    return seen
