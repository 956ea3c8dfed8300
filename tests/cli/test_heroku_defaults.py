"""Defaults that fit Heroku: its router is the one proxy (DYNO is set), and its 30 s between SIGTERM and SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import ROOT, SECRET, free_port, process_env
from tests.processes import gunicorn, running, wait_until_up
from tests.redoxygen_samples import MESSAGE_1
from webhooks import create_app
from webhooks.config import Settings

HEROKU_KILL_AFTER = 30  # seconds from SIGTERM to SIGKILL on a dyno


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, 0),
        ({"DYNO": "web.1"}, 1),
        ({"DYNO": "web.1", "TRUSTED_PROXY_COUNT": "0"}, 0),  # behind something else: the user says so
        ({"DYNO": "web.1", "TRUSTED_PROXY_COUNT": "2"}, 2),
        ({"TRUSTED_PROXY_COUNT": "1"}, 1),
    ],
)
def test_trusted_proxy_count_defaults_to_one_on_heroku(env, expected):
    assert Settings.from_env(env).trusted_proxy_count == expected


@pytest.mark.parametrize("dyno,status", [(None, 403), ("web.1", 200)])
def test_on_heroku_the_client_address_is_the_one_its_router_appends(env, dyno, status):
    # The allow-list sees the client the router names, not the router itself, once DYNO says it is Heroku.
    config = {**env, "ALLOWED_IPS": "203.0.113.7"}
    if dyno:
        config["DYNO"] = dyno
    client = create_app(config).test_client()
    answer = client.post(
        f"/redoxygen/receipt?token={SECRET}",
        json=MESSAGE_1,
        headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"},  # the client's own claim, then the router's
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert answer.status_code == status, answer.get_data(as_text=True)


def test_gunicorns_graceful_timeout_as_gunicorn_reads_it_fits_in_herokus_30_s(redis_server):
    result = subprocess.run(
        [*gunicorn(free_port()), "--print-config"],
        env=process_env({"REDIS_URL": redis_server.url}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    settings = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in result.stdout.splitlines())}
    assert int(settings["graceful_timeout"]) <= HEROKU_KILL_AFTER - 5, settings.get("graceful_timeout")


def test_sigterm_with_a_request_stuck_in_flight_stops_gunicorn_inside_30_s(redis_server):
    """A client that never finishes its body holds its callback open: the master cuts it at graceful_timeout."""
    port = free_port()
    env = process_env({"REDIS_URL": redis_server.url, "WEBHOOK_SECRET": SECRET})
    with running(gunicorn(port), env=env) as [web]:
        wait_until_up(f"http://127.0.0.1:{port}", [web])
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.sendall(
            f"POST /redoxygen/receipt?token={SECRET} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
        time.sleep(0.5)  # a worker has taken it and waits for the rest
        started = time.monotonic()
        os.killpg(web.pid, signal.SIGTERM)  # as Heroku does: every process of the dyno
        web.wait(timeout=HEROKU_KILL_AFTER + 10)
        elapsed = time.monotonic() - started
        stuck.close()
    assert elapsed < HEROKU_KILL_AFTER, f"gunicorn took {elapsed:.1f} s: Heroku would have SIGKILLed it"
    assert elapsed > 10, f"gunicorn stopped after {elapsed:.1f} s: the request in flight got no grace at all"
    assert web.returncode == 0
