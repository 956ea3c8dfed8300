"""The console's fixtures: its settings, a signed-in test client, a real gunicorn + `smshooks worker`, a browser."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from handlers.database import init_db
from tests.conftest import SECRET, RedisServer, free_port, process_env
from tests.local_services import SlackStandIn, slack_stand_in
from tests.processes import WORKER, gunicorn, running, wait_until_up

PASSWORD = "console-password-for-tests"
SECRET_KEY = "secret-key-signing-console-cookies-0123456789"
API_TOKEN = "api-token-for-console-tests-0123"
CHROMIUM = Path("/usr/bin/chromium")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

# What turns the console on, besides the deployment's settings (tests/conftest.py `env`).
CONSOLE = {"CONSOLE_PASSWORD": PASSWORD, "SECRET_KEY": SECRET_KEY, "API_TOKENS": API_TOKEN}


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(html)
    assert found, f"no csrf_token on the page: {html[:500]}"
    return found.group(1)


def sign_in(client, password: str = PASSWORD, user: str = "admin"):
    """Sign a Flask test client in through the login form (its CSRF token included); the POST's answer."""
    token = csrf_token(client.get("/console/login").get_data(as_text=True))
    return client.post("/console/login", data={"username": user, "password": password, "csrf_token": token})


@pytest.fixture
def console_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **CONSOLE}


@pytest.fixture
def console(console_env: dict[str, str]):
    """A test client of an app with the console on, signed in."""
    from webhooks import create_app

    client = create_app(console_env).test_client()
    assert sign_in(client).status_code == 302
    return client


@dataclass
class Service:
    """A running gunicorn and `smshooks worker`, with their Redis, SQLite file and Slack stand-in."""

    base: str
    env: dict[str, str]
    database_url: str
    slack: SlackStandIn
    redis: RedisServer


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """gunicorn + `smshooks worker` with the console on, HANDLERS=database,slack, SQLite, behind one proxy.

    A redis-server of its own: other tests flush the shared one between tests, which would empty its queue.
    """
    workdir = tmp_path_factory.mktemp("console-service")
    redis_server = RedisServer(workdir)
    redis_server.start()
    database_url = f"sqlite:///{workdir / 'smshooks.db'}"
    init_db(database_url)
    port = free_port()
    try:
        with slack_stand_in() as slack:
            env = process_env(
                {
                    "REDIS_URL": redis_server.url,
                    "DATABASE_URL": database_url,
                    "WEBHOOK_SECRET": SECRET,
                    **CONSOLE,
                    "HANDLERS": "database,slack",
                    "SLACK_WEBHOOK_URL": slack.url,
                    "SLACK_RETRY_INTERVALS": "none",  # one failed answer makes a failed job: the Failures page
                    "RETRY_INTERVALS": "1,1",
                    "PHONE_REGION": "AU",
                    "TRUSTED_PROXY_COUNT": "1",  # X-Forwarded-Proto: https makes the cookie Secure
                }
            )
            base = f"http://127.0.0.1:{port}"
            with running(gunicorn(port), WORKER, env=env) as procs:
                wait_until_up(base, procs)
                yield Service(base, env, database_url, slack, redis_server)
    finally:
        redis_server.stop()


def http_sign_in(service: Service, session: requests.Session | None = None) -> requests.Session:
    """A requests session signed in to the running service's console."""
    session = session or requests.Session()
    page = session.get(f"{service.base}/console/login", timeout=10)
    answer = session.post(
        f"{service.base}/console/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return session


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, driven by Playwright: one for the whole session (Playwright never downloads one)."""
    if not CHROMIUM.exists():
        if os.geteuid() == 0:  # root can install it, and bin/test (bin/setup test) does: a missing one is an error
            pytest.fail("/usr/bin/chromium is missing: run bin/setup test (it installs Debian's chromium)")
        pytest.skip("/usr/bin/chromium is missing and needs root: sudo apt-get install -y chromium fonts-liberation")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, service: Service):
    """A fresh browser context (no cookies) on a page signed in to the service's console."""
    context = browser.new_context(base_url=service.base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/console/")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")
    yield page
    context.close()
