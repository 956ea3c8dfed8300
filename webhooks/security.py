"""The shared secret: `?token=` in the registered URL, or the password of HTTP basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from flask import Request


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


def is_authorized(request: Request, secret: str | None) -> bool:
    """True when no secret is configured or the caller presents it; compared in constant time."""
    if not secret:
        return True
    expected = secret.encode("utf-8")
    # Every candidate is compared (no short-circuit), so timing says nothing about which one matched.
    results = [hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), expected)
               for candidate in presented_secrets(request)]
    return any(results)


def redact(text: str, secret: str | None) -> str:
    """`text` with the secret replaced, for anything that is logged or returned."""
    return text.replace(secret, "[secret]") if secret and text else text


def scrub(value: Any, secret: str | None) -> Any:
    """`value` (str, dict or list, nested) with the secret redacted from every string, keys included."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value
