"""A Digitaleo stand-in: a real HTTP server on loopback with `/token`, `/rest/status?action=queue`
and `/rest/smsstatus` in the documented shapes (digitaleo-sms-api.txt 1.1.2, 1.3, 3.11.3, 3.12).

It counts every request it receives and fails on demand: tokens revoked (401), a number
of 5xx answers, slow answers. Given a `ping_url` it pings it after each status change, as
the platform does (2.11), and `reply` adds the `rep` that may follow `ok` (2.8). Used by
the tests and by bench/digitaleo.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID = "51612c780b4dbaea8f81995becbcbfec08969d0e"
CLIENT_SECRET = "p280edbd76d510c41990cbe5e6108c7e"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # a line per request would drown the benchmark's figures


class DigitaleoStandIn:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.history: dict[str, list[dict[str, Any]]] = {}  # sms id -> every status, oldest first
        self.queue: list[dict[str, Any]] = []  # statuses not yet read from the queue
        self.calls: Counter[str] = Counter()  # "token", "queue", "smsstatus": requests received
        self.asked: list[list[str]] = []  # the ids of each /smsstatus request
        self.tokens: set[str] = set()
        self.expires_in = 3600
        self.failures: list[int] = []  # statuses the next API requests answer with, one each
        self.slow: list[float] = []  # seconds the next API requests wait before answering, one each
        self.seconds = itertools.count()
        self.on_demand = False  # /smsstatus makes up `made_up_history` for an id it has never seen
        self.asked_event = threading.Event()  # set when a /smsstatus request arrives
        self.hold: threading.Event | None = None  # when set up, /smsstatus waits for it before answering
        self.ping_url: str | None = None  # when set, each status change pings it: `<ping_url>&sms_id=N`
        self.pings: list[tuple[str, int]] = []  # (sms id, HTTP status) of each ping sent
        self.server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def env(self) -> dict[str, str]:
        """The settings pointing smshooks at this stand-in."""
        return {
            "DIGITALEO_CLIENT_ID": CLIENT_ID,
            "DIGITALEO_CLIENT_SECRET": CLIENT_SECRET,
            "DIGITALEO_TOKEN_URL": f"{self.url}/token",
            "DIGITALEO_API_URL": f"{self.url}/rest",
        }

    def start(self) -> DigitaleoStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # What happens to messages ----------------------------------------------------------

    def add_status(
        self,
        sms_id: str,
        status: str,
        *,
        recipient: str = "+33601010101",
        date: str | None = None,
        description: str | None = None,
        response: str | None = None,
    ) -> dict[str, Any]:
        """A status change: in the message's history and at the tail of the queue."""
        if date is None:  # distinct, increasing local times
            date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_700_000_000 + next(self.seconds)))
        record = {
            "smsId": str(sms_id),
            "status": status,
            "recipient": recipient,
            "mailingId": "10002398",
            "date": date,
            "description": description or f"status {status}",
            "response": response,
        }
        with self.lock:
            self.history.setdefault(str(sms_id), []).append(record)
            self.queue.append(record)
        if self.ping_url:
            self.ping(str(sms_id))
        return record

    def reply(self, sms_id: str, text: str, *, recipient: str = "+33601010101") -> dict[str, Any]:
        """The recipient answers: a `rep` status carrying the text, after the `ok` (2.8, 3.12's example)."""
        return self.add_status(sms_id, "rep", recipient=recipient, description="SMS répondu", response=text)

    def ping(self, sms_id: str) -> int:
        """Call `ping_url` with the SMS id, as the platform does on each update; the HTTP status it answered."""
        assert self.ping_url, "set ping_url first"
        separator = "&" if "?" in self.ping_url else "?"
        try:
            with urllib.request.urlopen(f"{self.ping_url}{separator}sms_id={sms_id}", timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as err:
            status = err.code
        with self.lock:
            self.pings.append((sms_id, status))
        return status

    def revoke_tokens(self) -> None:
        """Every token handed out so far is refused with 401 (as when one expires early)."""
        with self.lock:
            self.tokens.clear()

    def fail(self, status: int, times: int = 1) -> None:
        with self.lock:
            self.failures.extend([status] * times)

    def answer_slowly(self, seconds: float, times: int = 1) -> None:
        with self.lock:
            self.slow.extend([seconds] * times)

    def api_calls(self) -> int:
        return self.calls["queue"] + self.calls["smsstatus"]

    # The HTTP side -----------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._route(request)(environ, start_response)

    def _route(self, request: Request) -> Response:
        if request.path == "/token":
            return self._token(request)
        name = {"/rest/status": "queue", "/rest/smsstatus": "smsstatus"}.get(request.path)
        if name is None:
            return _json({"status": 404, "message": "Unknown method"}, 404)
        with self.lock:
            self.calls[name] += 1
            # A request is either slow or failing: a slow one is the one the client gives up on.
            pause = self.slow.pop(0) if self.slow else 0.0
            failure = self.failures.pop(0) if self.failures and not pause else None
        if name == "smsstatus":
            self.asked_event.set()
            if self.hold is not None:
                self.hold.wait(30)
        if pause:
            time.sleep(pause)
        if failure:
            return _json({"status": failure, "message": "Internal Server Error"}, failure)
        auth = request.headers.get("Authorization", "")
        with self.lock:
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return _json({"status": 401, "message": "Authenticate failed"}, 401)
        if name == "queue":
            if request.args.get("action") != "queue":
                return _json({"status": 400, "message": "only action=queue is served here"}, 400)
            return self._queue(request)
        return self._smsstatus(request)

    def _token(self, request: Request) -> Response:
        with self.lock:
            self.calls["token"] += 1
        form = request.form
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
        ):
            return _json({"error": "invalid_client", "error_description": "The client credentials are invalid"}, 400)
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens.add(token)
        return _json(
            {"access_token": token, "expires_in": str(self.expires_in), "token_type": "bearer", "scope": "basic"}
        )

    def _queue(self, request: Request) -> Response:
        limit = int(request.args.get("limit") or 0)
        with self.lock:
            taken = self.queue[:limit] if limit else list(self.queue)
            del self.queue[: len(taken)]
        return _json({"size": len(taken), "total": None, "list": taken, "httpStatusCode": 200})

    def _smsstatus(self, request: Request) -> Response:
        ids = [i for i in (request.args.get("smsId") or "").split(",") if i]
        limit = int(request.args.get("limit") or 0)
        offset = int(request.args.get("offset") or 0)
        with self.lock:
            self.asked.append(ids)
            if self.on_demand:
                for i in ids:
                    self.history.setdefault(i, made_up_history(i))
            found = [record for i in ids for record in self.history.get(i, [])]
        page = found[offset : offset + limit] if limit else found[offset:]
        return _json({"size": len(page), "total": None, "list": page, "httpStatusCode": 200})


def made_up_history(sms_id: str) -> list[dict[str, Any]]:
    """A sent-then-delivered history, the same for the same id every time (bench/faults knows it in advance)."""
    base = 1_700_000_000 + int(sms_id) % 1_000_000
    return [
        {
            "smsId": str(sms_id),
            "status": status,
            "recipient": "+33601010101",
            "mailingId": "10002398",
            "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(base + step)),
            "description": f"status {status}",
            "response": None,
        }
        for step, status in enumerate(("on", "ok"))
    ]


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
