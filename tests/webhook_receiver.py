"""A real HTTP receiver standing in for the user's application, for the forward handler's tests.

It checks every request against the Standard Webhooks specification with its own verifier,
written from the spec (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
not with the `standardwebhooks` library the handler signs with: `webhook-signature` holds
space-separated `v1,<base64>` signatures, one of which must be the base64 HMAC-SHA256, keyed
with the base64-decoded part of `whsec_...`, of `<webhook-id>.<webhook-timestamp>.<body>`; a
timestamp more than five minutes from now is refused. A request that fails is answered 401
and recorded as refused.

`script` holds answers to give first, as (status, headers), and `script_for` such answers for
the deliveries of one message; then `default` answers. `stop()`
and `start()` take it off and back onto the same port (connection refused meanwhile).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import free_port

TOLERANCE = 5 * 60  # seconds, as the specification recommends


class Refused(ValueError):
    """The request does not verify; the message says why."""


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> None:
    """Raise Refused unless the request is signed with `secret` per the specification."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise Refused("missing webhook-id, webhook-timestamp or webhook-signature")
    if not stamp.isdigit():
        raise Refused(f"webhook-timestamp {stamp!r} is not integer seconds")
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE:
        raise Refused(f"webhook-timestamp {stamp} is more than {TOLERANCE} s from now")
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(value), expected):
            return
    raise Refused("no v1 signature matches")


def sign(secret: str, msg_id: str, stamp: int, body: bytes) -> str:
    """The spec's signature, for tests that forge requests (stale, tampered)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Receiver:
    """Records every request: at (monotonic), webhook-id, status answered, parsed body, refused reason."""

    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/smshooks"
        self.script: list[tuple[int, dict[str, str]]] = []
        # Answers for deliveries of one message (its first event's message_id), before `script`.
        self.script_for: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.default = 200
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the handler's session expects
            # Headers and body leave in two writes: without this, each answer waits ~40 ms for a delayed ACK.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record: dict[str, Any] = {"at": time.monotonic(), "id": self.headers.get("webhook-id")}
                try:
                    verify(receiver.secret, dict(self.headers), body)
                except Refused as err:
                    status, headers, record["refused"] = 401, {}, str(err)
                else:
                    record["body"] = json.loads(body)
                    first = record["body"][0] if isinstance(record["body"], list) else record["body"]
                    with receiver.lock:
                        script = receiver.script_for.get(first.get("message_id")) or receiver.script
                        status, headers = script.pop(0) if script else (receiver.default, {})
                record["status"] = status
                with receiver.lock:
                    receiver.requests.append(record)
                answer = json.dumps({"status": status}).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted(self) -> list[dict[str, Any]]:
        """Requests that verified and were answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def events(self) -> list[dict[str, Any]]:
        """The events accepted, flattened (a batch is a JSON array), in arrival order."""
        out: list[dict[str, Any]] = []
        for r in self.accepted():
            out += r["body"] if isinstance(r["body"], list) else [r["body"]]
        return out

    def refused(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if "refused" in r]


@contextmanager
def receiver(secret: str) -> Iterator[Receiver]:
    r = Receiver(secret)
    r.start()
    try:
        yield r
    finally:
        r.stop()
