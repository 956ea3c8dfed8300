"""The refused-callbacks log: the last `CAP` requests answered 400/401/403/413/415/429, in Redis.

One JSON entry per refusal, newest first, in the list `smshooks:refused` (capped at `CAP`,
expiring `TTL` after the last refusal): time, endpoint, method, client address, status, the
reason the caller was given, and the first `BODY_BYTES` of the body with every secret removed
(the configured ones, the ones the request presented, URL passwords, `name=value` and JSON
credentials, Bearer/Basic values). No header is kept, so neither is Authorization.
A Redis failure while logging never changes the answer.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from flask import Request, Response
from redis import Redis
from redis.exceptions import RedisError

from .redaction import AUTH_SCHEME, CREDENTIAL_PAIR, FILTERED, URL_PASSWORD, redact

log = logging.getLogger(__name__)

KEY = "smshooks:refused"
CAP = 500
TTL = 7 * 24 * 3600
BODY_BYTES = 512
READ_BYTES = 8192  # read (and scrubbed) before the cut, so that no secret is cut in half and half-shown
LOGGED = frozenset({400, 401, 403, 413, 415, 429})
_MESSAGE = re.compile(r"<MESSAGE>(.*?)</MESSAGE>", re.DOTALL)


def clean(text: str, secrets: Iterable[str]) -> str:
    """`text` without secrets or credentials; phone numbers stay (only signed-in users see this)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    text = URL_PASSWORD.sub(r"\g<head>***", text)
    text = CREDENTIAL_PAIR.sub(lambda m: m.group("head") + FILTERED, text)
    return AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {FILTERED}", text)


def presented(request: Request) -> list[str]:
    """What the request offered as a secret (right or wrong): its ?token= values and basic-auth password."""
    found = list(request.args.getlist("token"))
    try:
        auth = request.authorization
    except Exception:  # noqa: BLE001 (a malformed header raises inside werkzeug: there is nothing to take)
        auth = None
    if auth is not None:
        found += [v for v in (auth.password, auth.token) if v]
    return [s for s in found if len(s) >= 3]


def reason(response: Response) -> str:
    """The error message the caller got, from a JSON body or Red Oxygen's <MESSAGE>."""
    body = response.get_json(silent=True)
    if isinstance(body, dict) and body.get("error"):
        text = str(body["error"])
        fields = body.get("fields") or {}
        if isinstance(fields, dict) and fields:
            text += ": " + "; ".join(f"{k}: {_joined(v)}" for k, v in fields.items())
        return text[:1000]
    data = response.get_data(as_text=True) if not response.is_streamed else ""
    found = _MESSAGE.search(data)
    return (found.group(1) if found else data)[:1000]


def _joined(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def body_head(request: Request, already_read: bytes | None) -> bytes:
    """The body's first READ_BYTES: what the view read, else read now (at most that much)."""
    if already_read is not None:
        return already_read[:READ_BYTES]
    cached = getattr(request, "_cached_data", None)
    if cached is not None:
        return bytes(cached[:READ_BYTES])
    try:
        return request.stream.read(READ_BYTES)
    except Exception:  # noqa: BLE001 (a broken client stream: log the refusal without a body)
        return b""


def entry(request: Request, response: Response, secrets: Iterable[str], body: bytes) -> dict[str, Any]:
    """One log entry for a refused request; nothing secret in it."""
    hidden = [*secrets, *presented(request)]
    query = clean(request.query_string.decode("latin-1"), hidden)
    return {
        "at": time.time(),
        "endpoint": request.path,
        "query": query,
        "method": request.method,
        "client": request.remote_addr or "",
        "status": response.status_code,
        "reason": redact(reason(response), hidden),  # our own words: only a secret could need removing
        "content_type": clean(request.content_type or "", hidden)[:200],
        "body": clean(body.decode("utf-8", "replace"), hidden)[:BODY_BYTES],
        "length": request.content_length,
    }


def record(redis: Redis, item: dict[str, Any]) -> None:
    """Add an entry (newest first), keep the last CAP; never raises."""
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.lpush(KEY, json.dumps(item))
            pipe.ltrim(KEY, 0, CAP - 1)
            pipe.expire(KEY, TTL)
            pipe.execute()
    except RedisError as err:
        log.debug("refusal not logged: %s", type(err).__name__)


def latest(redis: Redis, limit: int = CAP) -> list[dict[str, Any]]:
    """The logged refusals, newest first. Raises RedisError."""
    out = []
    for raw in redis.lrange(KEY, 0, limit - 1):
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out
