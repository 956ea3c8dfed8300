"""The shared secret: `?token=` in the registered URL, or the password of HTTP basic auth.

`WEBHOOK_SECRET` may hold several secrets separated by commas, so a secret can be
rotated without downtime: every one is accepted, and every one is scrubbed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac

from flask import Request

from webhooks.telemetry.redaction import Secrets, secret_list


def _basic_password(header: str | None) -> str | None:
    """The password of a Basic Authorization header, or None.

    Parsed here rather than through `request.authorization`, which raises (a 500)
    on a non-ASCII header.
    """
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip().encode("latin-1"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


def presented_secrets(request: Request) -> list[str]:
    found = [request.args.get("token"), _basic_password(request.headers.get("Authorization"))]
    return [s for s in found if s]


def is_authorized(request: Request, secrets: Secrets) -> bool:
    """True when no secret is configured or the caller presents one of them; compared in constant time."""
    return matches(presented_secrets(request), secrets)


@functools.lru_cache(maxsize=16)  # the configured secrets, split and encoded once, not per callback
def _encoded(secrets: str | tuple[str, ...] | None) -> tuple[bytes, ...]:
    return tuple(s.encode("utf-8") for s in secret_list(secrets))


def matches(candidates: list[str], secrets: Secrets) -> bool:
    """True when no secret is configured or a candidate is one of them; compared in constant time."""
    expected = _encoded(secrets if isinstance(secrets, (str, tuple)) or secrets is None else tuple(secrets))
    if not expected:
        return True
    # surrogatepass: a lone surrogate must compare unequal, not raise (a 500).
    presented = [c.encode("utf-8", "surrogatepass") for c in candidates]
    # Every candidate is compared with every secret (no short-circuit), so timing says
    # nothing about which secret matched, or whether one did before the last comparison.
    results = [hmac.compare_digest(candidate, secret) for candidate in presented for secret in expected]
    return any(results)
