"""With SENTRY_DSN set, a failing handler is reported to Sentry, and the secret is not in the report."""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import ROOT, SECRET, process_env, venv_bin, wait_for
from tests.providers.test_redoxygen import REPLY
from webhooks import create_app


class SentryStandIn(BaseHTTPRequestHandler):
    """Sentry's ingest endpoint (`/api/<project>/envelope/`): keeps every body it gets."""

    received: list[bytes] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # only if the SDK chose it

            body = brotli.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_failing_handler_is_reported_without_the_secret(env, redis):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SentryStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SentryStandIn.received = []
    try:
        dsn = f"http://publickey@127.0.0.1:{server.server_port}/1"
        client = create_app(env).test_client()
        assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
        worker_env = process_env({**env, "HANDLERS": "tests.support_handlers:Leaky", "RETRY_INTERVALS": "none",
                                  "SENTRY_DSN": dsn, "SENTRY_ENVIRONMENT": "test"})
        import subprocess

        result = subprocess.run([venv_bin("smshooks"), "worker", "--burst"], env=worker_env, cwd=ROOT, timeout=60,
                                capture_output=True, text=True)
        logs = result.stdout + result.stderr
        assert "token=[secret] failed" in logs, logs[-3000:]  # the traceback is logged ...
        assert SECRET not in logs  # ... without the secret
        wait_for(lambda: any(b'"exception"' in body for body in SentryStandIn.received), timeout=10)
    finally:
        server.shutdown()
    reports = b"\n".join(SentryStandIn.received)
    assert b"ConnectionError" in reports and b'"environment":"test"' in reports.replace(b" ", b"")
    assert b"token=[secret]" in reports
    assert SECRET.encode() not in reports
