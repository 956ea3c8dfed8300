"""Real servers on loopback standing in for Slack (HTTP) and a mail relay (SMTP, aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.conftest import free_port


class SlackStandIn:
    """An incoming-webhook endpoint. `script` holds the answers to give first, as (status, headers);
    after it runs out, `default` answers. Every request is recorded with the time and answer."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.default = 200
        self.requests: list[dict] = []  # {"at": monotonic, "status": answered, "body": parsed JSON}
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in.lock:
                    status, headers = stand_in.script.pop(0) if stand_in.script else (stand_in.default, {})
                    stand_in.requests.append({"at": time.monotonic(), "status": status, "body": body})
                answer = b"ok" if status == 200 else b"rate_limited" if status == 429 else b"internal_error"
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def delivered(self) -> list[dict]:
        """Bodies Slack accepted (answered 200)."""
        with self.lock:
            return [r["body"] for r in self.requests if r["status"] == 200]

    def attempts(self) -> int:
        with self.lock:
            return len(self.requests)


@contextmanager
def slack_stand_in() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn()
    stand_in.thread.start()
    try:
        yield stand_in
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()


class SmtpSink:
    """aiosmtpd's handler: keeps every message received, parsed, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in list(self.messages) if address in rcpt]


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpSink, str]]:
    """A running SMTP server (no TLS, no auth) and its `smtp://` URL."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()
