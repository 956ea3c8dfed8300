"""The receiving example in docs/handlers.md, run as written against a real worker's deliveries."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager

import requests
from werkzeug.serving import make_server

from tests.conftest import ROOT, SECRET, free_port, process_env, wait_for
from tests.processes import WORKER, running
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks import create_app

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def example_source() -> str:
    doc = (ROOT / "docs" / "handlers.md").read_text()
    section = doc.split("**Receiving it.**", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@contextmanager
def example_app(monkeypatch, confirmed: list[str]):
    monkeypatch.setenv("FORWARD_SECRET", SIGNING)
    namespace = {"__name__": "receiver_example", "confirm_appointment": confirmed.append}
    exec(compile(example_source(), "docs/handlers.md", "exec"), namespace)  # noqa: S102 (our own docs)
    server = make_server("127.0.0.1", free_port(), namespace["app"], threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/smshooks"
    finally:
        server.shutdown()


def test_the_documented_receiver_verifies_and_processes_forwarded_events(monkeypatch, redis, redis_server, sqlite_url):
    confirmed: list[str] = []
    with example_app(monkeypatch, confirmed) as url:
        # Unsigned, it is refused: the example really verifies.
        assert requests.post(url, json={"kind": "reply", "text": "YES"}, timeout=5).status_code == 401
        env = {
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": sqlite_url,
            "WEBHOOK_SECRET": SECRET,
            "HANDLERS": "forward",
            "FORWARD_URL": url,
            "FORWARD_SECRET": SIGNING,
        }
        client = create_app(env).test_client()
        with running(WORKER, env=process_env(env)):
            client.post(f"/redoxygen/receipt?token={SECRET}", json={"Messages": {"Count": 1, "1": MESSAGE_1}})
            client.post(f"/redoxygen/reply?token={SECRET}", data={**REPLY, "ReplyText": " yes "})
            wait_for(lambda: confirmed, timeout=30)
            wait_for(lambda: not redis.llen("smshooks:inbox") and not redis.keys("smshooks:order:*"), timeout=10)
    assert confirmed == ["123"]  # the reply confirmed SMS 123; the receipt was accepted and ignored
