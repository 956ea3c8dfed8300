"""Bearer tokens for the API (`/api/v1/*`): `Authorization: Bearer <one of API_TOKENS>`.

Not WEBHOOK_SECRET: that one sits in provider dashboards and callback URLs, while an API
token is held by the user's own application. Answers:
    404  API_TOKENS is unset: the API is off, and the body says how to turn it on
    401  a missing or wrong token (WWW-Authenticate: Bearer), counted in the same
         failed-authentication throttle as callbacks: 429 past AUTH_FAIL_LIMIT a minute
ALLOWED_IPS is not applied: it lists the providers' addresses, and the user's application
is not one of them.
"""

from __future__ import annotations

from flask import Request

from webhooks.config import Settings

from .access import Refusal, client_address, count_failure, throttle_key
from .security import matches

OFF = (
    "the API is off: set API_TOKENS to one or more tokens of at least 24 characters (comma-separated) "
    "and send `Authorization: Bearer <token>`"
)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def refuse(request: Request, settings: Settings) -> Refusal | None:
    """None when the request carries one of API_TOKENS; otherwise the refusal to answer with."""
    if not settings.api_tokens:
        return Refusal(404, OFF)
    token = bearer_token(request)
    # matches() compares with every token without stopping early, so timing says nothing of which one matched.
    if token is not None and matches([token], settings.api_tokens):
        return None
    if settings.auth_fail_limit:
        wait = count_failure(throttle_key(client_address(request)), settings.auth_fail_limit)
        if wait:
            return Refusal(
                429, f"too many failed authentications from this address; retry in {wait} s", {"Retry-After": str(wait)}
            )
    challenge = 'Bearer realm="smshooks"' + (', error="invalid_token"' if token is not None else "")
    return Refusal(
        401, "missing or wrong token: send `Authorization: Bearer <one of API_TOKENS>`", {"WWW-Authenticate": challenge}
    )
