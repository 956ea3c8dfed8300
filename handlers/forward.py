"""The `forward` handler: every event POSTed to the user's own application, signed the Standard Webhooks way.

Settings (docs/handlers.md, "forward"): `FORWARD_URL` (one URL or several, comma-separated:
each is a lane of its own, `forward`, `forward[2]`, ..., so one slow receiver never holds up
another), `FORWARD_SECRET` (`whsec_` + base64; several for rotation, the first signs),
`FORWARD_BATCH`, `FORWARD_RAW`, `FORWARD_TIMEOUT`, `FORWARD_ALLOW_HTTP`, and the
`FORWARD_EVENTS` / `FORWARD_RETRY_INTERVALS` every handler has.

A request carries `FORWARD_BATCH` events (one by default, sent as a JSON object; more as a JSON
array), and a job makes up to REQUESTS_PER_JOB requests in order. A request's `webhook-id` is
derived from the events it carries, so every retry and every replay of it has the same id and a
receiver can drop what it already has (https://www.standardwebhooks.com/, "Idempotency"). When a
request fails, the job stops there and says how far it got (`PartlyHandled`): its retry starts at
that request, so nothing the receiver accepted is sent again and order is kept. The signature is made by the
`standardwebhooks` library: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`.

What the receiver answers decides the rest: 2xx is delivered; 429 or 503 with `Retry-After`
is retried no sooner than it asks (`RetryLater`); 410 Gone stops the lane (`DestinationGone`,
see webhooks/pipeline/gone.py); anything else, a timeout or a refused connection is retried
with the handler's backoff, then reaches the fallback email.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from standardwebhooks import Webhook

from webhooks.events import EVENT_SCHEMA, Event

from .base import DestinationGone, Handler, PartlyHandled, RetryLater

MAX_BATCH = 1000  # events in one request, at most
# Requests one job makes, one after the other: the job's cost (RQ's bookkeeping, several Redis round
# trips) is shared by ten deliveries, and ten answers at FORWARD_TIMEOUT's default fit in JOB_TIMEOUT.
REQUESTS_PER_JOB = 10
MAX_REDIRECTS = 3
USER_AGENT = "smshooks-forward/1"


class ForwardError(RuntimeError):
    """The receiver did not take a delivery; the job is retried."""


def _flag(env: Mapping[str, str], key: str) -> bool:
    value = (env.get(key) or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{key} must be 1 or 0, got {value!r}")


def _number(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown(url: str) -> str:
    """The URL as logs and emails show it: no user, password or query (where tokens hide)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path or '/'}"


def check_url(url: str, allow_http: bool) -> str:
    """The URL, or ValueError saying what is wrong with it (never quoting its query or password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        raise ValueError("FORWARD_URL holds a URL that cannot be read") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"FORWARD_URL must hold http(s):// URLs, got one starting {url[:8]!r}")
    if parts.scheme == "http" and not allow_http and not _is_local(parts.hostname):
        raise ValueError(
            f"FORWARD_URL {shown(url)} is plain http:// to another machine: events would travel unencrypted; "
            "use https://, or set FORWARD_ALLOW_HTTP=1 if the network is yours"
        )
    return url


def read_secret(value: str) -> Webhook:
    """A `whsec_...` secret as the signer; ValueError (without the secret) when it is not one."""
    if not value.startswith("whsec_"):
        raise ValueError("FORWARD_SECRET must start with whsec_ (Standard Webhooks' form: whsec_ + base64)")
    try:
        key = base64.b64decode(value[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("FORWARD_SECRET is not whsec_ followed by base64") from None
    if len(key) < 24:
        raise ValueError(f"FORWARD_SECRET is {len(key)} bytes long; use 24 to 64 random bytes")
    return Webhook(value)


def webhook_id(events: Sequence[Event]) -> str:
    """The same for every attempt and replay of a delivery: it is made of what the delivery carries."""
    digest = hashlib.sha256("\n".join(e.event_id for e in events).encode()).hexdigest()[:32]
    return f"msg_{digest}"


def _retry_after(response: requests.Response) -> float | None:
    raw = (response.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


class ForwardHandler(Handler):
    """POSTs the events to one URL; `lanes()` gives one of these per URL in FORWARD_URL."""

    name = "forward"
    ordered = True  # the events of one message reach the receiver in the order they were stored

    def __init__(
        self,
        url: str,
        signer: Webhook,
        batch: int = 1,
        raw: bool = False,
        timeout: float = 10.0,
        siblings: Sequence[ForwardHandler] = (),
    ) -> None:
        self.url = url
        self.signer = signer
        self.batch = batch
        self.max_batch = batch * REQUESTS_PER_JOB
        self.raw = raw
        self.timeout = timeout
        self.siblings = tuple(siblings)
        self.session = requests.Session()  # keep-alive to the receiver; RQ does the retrying

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ForwardHandler:
        allow_http = _flag(env, "FORWARD_ALLOW_HTTP")
        urls = [check_url(u.strip(), allow_http) for u in (env.get("FORWARD_URL") or "").split(",") if u.strip()]
        if not urls:
            raise ValueError("FORWARD_URL is not set: name the URL (or URLs, comma-separated) to forward events to")
        secrets = [s.strip() for s in (env.get("FORWARD_SECRET") or "").split(",") if s.strip()]
        if not secrets:
            raise ValueError("FORWARD_SECRET is not set: give the whsec_... secret the receiver verifies with")
        signer = [read_secret(s) for s in secrets][0]  # every one is checked; the first signs
        options: dict[str, Any] = {
            "batch": int(_number(env, "FORWARD_BATCH", 1, 1, MAX_BATCH)),
            "raw": _flag(env, "FORWARD_RAW"),
            "timeout": _number(env, "FORWARD_TIMEOUT", 10.0, 0.1, 300.0),
        }
        others = [cls(url, signer, **options) for url in urls[1:]]
        return cls(urls[0], signer, siblings=others, **options)

    @property
    def destination(self) -> str:
        return shown(self.url)

    def lanes(self) -> Sequence[Handler]:
        return (self, *self.siblings)

    def body(self, events: Sequence[Event]) -> str:
        """The JSON sent: one event object, or an array of them when FORWARD_BATCH is over 1."""
        dumped = []
        for event in events:
            data = EVENT_SCHEMA.dump(event)
            if not self.raw:
                del data["raw"]
            dumped.append(data)
        payload: Any = dumped if self.batch > 1 else dumped[0]
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))

    def handle(self, event: Event) -> None:
        self.handle_batch([event])

    def handle_batch(self, events: Sequence[Event]) -> None:
        """Deliver in requests of FORWARD_BATCH events, in order; stop at the first that fails."""
        for start in range(0, len(events), self.batch):
            try:
                self.deliver(events[start : start + self.batch])
            except Exception as exc:
                if start == 0:
                    raise
                raise PartlyHandled(start, exc) from exc

    def deliver(self, events: Sequence[Event]) -> None:
        """One signed POST; raises unless the receiver answered 2xx."""
        body = self.body(events)
        msg_id = webhook_id(events)
        now = datetime.now(timezone.utc)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(msg_id, now, body),
        }
        response = self._post(body.encode(), headers)
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 410:
            raise DestinationGone(f"{self.destination} answered 410 Gone")
        wait = _retry_after(response) if status in (429, 503) else None
        detail = f"{self.destination} answered {status}: {response.text[:200]!r}"
        if wait is not None:
            raise RetryLater(f"{detail} (Retry-After: {wait:.0f} s)", wait)
        raise ForwardError(detail)

    def _post(self, data: bytes, headers: dict[str, str]) -> requests.Response:
        """POST, following a 307/308 on the same scheme, host and port only, MAX_REDIRECTS times."""
        url = self.url
        origin = urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self.session.post(
                    url, data=data, headers=headers, timeout=(self.timeout, self.timeout), allow_redirects=False
                )
            except requests.Timeout:
                raise ForwardError(f"{self.destination} did not answer within {self.timeout:g} s") from None
            except requests.RequestException as exc:
                # The exception's text quotes the URL, query and all: say what happened without it.
                raise ForwardError(f"{self.destination} could not be reached ({type(exc).__name__})") from None
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            target = urljoin(url, response.headers.get("Location") or "")
            if response.status_code not in (307, 308) or urlsplit(target)[:2] != origin:
                raise ForwardError(
                    f"{self.destination} redirected ({response.status_code}) to {shown(target)}; "
                    "only 307/308 to the same host are followed: set FORWARD_URL to where it points"
                )
            url = target
        raise ForwardError(f"{self.destination} redirected more than {MAX_REDIRECTS} times")

    def close(self) -> None:
        self.session.close()  # each lane is closed by the worker, as a handler of its own
