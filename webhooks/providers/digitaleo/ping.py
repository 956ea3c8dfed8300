"""What a Digitaleo ping carries: the SMS id, and nothing else (section 2.11). Pure: no Flask, no Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from webhooks.providers import ParseError

from .statuses import as_sms_id


def parse_ping(payload: Mapping[str, Any]) -> str:
    """The SMS id a ping names (`sms_id`, from the query or the body)."""
    value = payload.get("sms_id")
    if value is None or value == "":
        raise ParseError({"sms_id": ["missing: Digitaleo calls ping?sms_id=<the SMS id>"]})
    sms_id = as_sms_id(value)
    if sms_id is None:
        raise ParseError({"sms_id": [f"must be the numeric SMS id, got {str(value)[:40]!r}"]})
    return sms_id


def appended_token(token: str) -> tuple[str, dict[str, Any]] | None:
    """`<secret>?sms_id=N`, a `token` with the ping's query appended to it: the secret and the fields after `?`.

    Section 2.11 says the platform calls the registered address followed by `?sms_id=xxxx`;
    on an address that already holds `?token=<secret>`, a platform appending blindly
    makes the token read `<secret>?sms_id=xxxx`. None when the token has no `?`.
    """
    secret, sep, appended = token.partition("?")
    if not sep:
        return None
    return secret, dict(parse_qsl(appended))
