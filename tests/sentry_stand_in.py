"""A stand-in for Sentry's ingest endpoint, for the tests that check what reaches Sentry."""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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


def sentry_stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SentryStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SentryStandIn.received = []
    return server, f"http://publickey@127.0.0.1:{server.server_port}/1"


def error_events() -> list[bytes]:
    """The envelopes that carry an error event (not sessions or transactions)."""
    return [body for body in SentryStandIn.received if b'"exception"' in body]
