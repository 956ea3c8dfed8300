"""SMSC (smsc.ru, smsc.kz, smsc.ua, smscentre.com) delivery statuses and incoming SMS.

Documents: ../shared/providers/smsc-smtp-api.txt (the send side: a message's `id` is the
client's or SMSC's, "not necessarily unique") and SMSC's page "Transmitting statuses and
messages to the Client handler" (smscentre.com/api/http/miscellaneous/callback/, the same
page as smsc.ru/api/http/miscellaneous/callback/). That page says SMSC calls the handler URL
set in the account after each delivery status and each incoming SMS; `?charset=utf-8`,
`koi8-r` or `windows-1251` (the default) in that URL chooses the encoding, and "when the fmt
parameter is passed, koi8-r is not used"; `fmt=2` sends XML, `fmt=3` JSON, otherwise form
fields; `md5`, `sha1` or `crc32` in the URL adds a checksum of the fields and the password.

A status call carries `id`, `phone`, `status`, `time`, `ts`, `err`, `cnt`, `type`; an
incoming SMS carries `id`, `phone` (the sender), `mes` (the text), `to`, `sent`, `time`.
`mes` tells the two apart.

The checksum formula is not on the part of SMSC's page we could read. Two independent public
implementations agree on it: `hash("<id>:<phone>:<status>:<password>")` for a status and
`hash("<phone>:<mes>:<to>:<password>")` for an incoming SMS (Codewiser's SmsCenterMailer
`webhookStatus`, PHP; the finenumbers SMSC adapter `verifyCallbackSignature`, TypeScript and
Go), as lowercase hex. For crc32 we also accept the unsigned decimal that PHP's crc32() prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load

from webhooks.events import Event, Kind, Status, event_id_for

from . import Code, ParseContext, ParseError, SignatureError, is_number, reply_event

NAME = "smsc"
DEFAULT_CHARSET = "windows-1251"  # SMSC's documented default for the handler

# Status code -> (our status, final, SMSC's words). Codes from SMSC's status-code table.
STATUSES: dict[str, tuple[Status, bool, str]] = {
    "-3": (Status.UNKNOWN, False, "not found"),  # SMSC has no such message: says nothing about delivery
    "-2": (Status.FAILED, True, "stopped"),  # stopped before sending: it will never be sent
    "-1": (Status.QUEUED, False, "waiting to be sent"),
    "0": (Status.SENT, False, "handed to the operator"),
    "1": (Status.DELIVERED, True, "delivered"),
    "2": (Status.DELIVERED, True, "read"),  # read implies delivered
    "3": (Status.FAILED, True, "expired"),
    "4": (Status.DELIVERED, True, "link clicked"),  # a click implies delivery
    "20": (Status.FAILED, True, "undeliverable"),
    "22": (Status.FAILED, True, "invalid number"),
    "23": (Status.FAILED, True, "prohibited"),
    "24": (Status.FAILED, True, "insufficient funds"),
    "25": (Status.FAILED, True, "number unavailable"),
}
CHECKSUM_FIELDS = ("md5", "sha1", "crc32")


def status_code(text: str) -> str:
    """A status as the parser compares it, for SMSC_STATUS_MAP: a whole number, so `01` is `1` and `-1` stays."""
    text = text.strip()
    if len(text) > 20 or not is_number(text[1:] if text[:1] in ("-", "+") else text):
        raise ValueError("is not a number SMSC sends")
    return str(int(text))


def url_charset(url_charset: str | None, fmt: str | None) -> str | None:
    """The charset SMSC was told to use in the handler URL: its `charset`, else windows-1251.

    It reads the query string, and the body when its Content-Type names no charset (a
    declared one wins, as for every provider: webhooks/web/payload.py's decode). None means
    "the format's own rule": SMSC does not use koi8-r for XML or JSON (`fmt`), so those
    bodies are read as UTF-8 (JSON) or by their XML declaration.
    """
    charset = (url_charset or DEFAULT_CHARSET).strip().lower()
    if charset == "koi8-r" and (fmt or "").strip() in ("2", "3"):
        return None
    return charset


class _Callback(Schema):
    class Meta:
        unknown = EXCLUDE  # SMSC adds fields (cnt, type, cost, ...): kept in `raw`

    id = Code(required=True)
    phone = Code(required=True)  # SMSC's JSON may send it as a number; at most 64 characters (the database's)
    time = Code(load_default=None)
    ts = Code(load_default=None)

    @pre_load
    def _blank_is_missing(self, data: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        # Form fields arrive as "" when SMSC has no value; `mes` may really be empty.
        return {k: v for k, v in data.items() if v != "" or k == "mes"}


class _Status(_Callback):
    status = Code(required=True)
    err = Code(load_default=None)


class _Incoming(_Callback):
    mes = fields.String(required=True)
    to = Code(load_default=None)
    sent = Code(load_default=None)


_STATUS, _INCOMING = _Status(), _Incoming()


def _unix_time(*values: str | None) -> datetime | None:
    """The first value that is a Unix time (seconds); other spellings stay in `raw` only."""
    for value in values:
        if value and is_number(value) and len(value) <= 11:
            return datetime.fromtimestamp(int(value), timezone.utc)
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def verify_checksum(payload: Mapping[str, Any], password: str, charset: str) -> None:
    """Raise SignatureError unless the md5, sha1 or crc32 field matches the fields and the password."""
    if "mes" in payload:
        parts = [payload.get("phone"), payload.get("mes"), payload.get("to")]
    else:
        parts = [payload.get("id"), payload.get("phone"), payload.get("status")]
    # SMSC hashes the text it sends, so the bytes are those of the declared charset.
    message = ":".join([*map(_text, parts), password]).encode(charset, "replace")
    given = {name: _text(payload.get(name)).strip().lower() for name in CHECKSUM_FIELDS if payload.get(name)}
    if not given:
        raise SignatureError(
            {
                "md5": [
                    "missing: SMSC_PASSWORD is set, so add md5 (or sha1, crc32) to the handler URL in SMSC's settings"
                ]
            }
        )
    crc = zlib.crc32(message)
    expected = {
        "md5": {hashlib.md5(message).hexdigest()},
        "sha1": {hashlib.sha1(message).hexdigest()},
        "crc32": {f"{crc:08x}", str(crc)},
    }
    for name, value in given.items():
        if not any(hmac.compare_digest(value.encode("utf-8", "replace"), e.encode()) for e in expected[name]):
            raise SignatureError({name: ["does not match the fields and SMSC_PASSWORD"]})


def _load(schema: Schema, payload: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return schema.load(payload)
    except ValidationError as err:
        raise ParseError({k: (v if isinstance(v, list) else [str(v)]) for k, v in err.messages_dict.items()}) from None


def parse_callback(
    payload: Mapping[str, Any], ctx: ParseContext, password: str | None = None, charset: str | None = None
) -> list[Event]:
    """One event: a receipt for a status call, a reply for an incoming SMS (it has `mes`)."""
    if not isinstance(payload.get("mes", ""), str):
        raise ParseError({"mes": ["must be text"]})
    if password:
        verify_checksum(payload, password, charset or "utf-8")
    # The checksum is a hash of the password and known fields: kept, it would allow an offline guess.
    raw = {k: v for k, v in payload.items() if k not in CHECKSUM_FIELDS}
    if "mes" in payload:
        return [_incoming(_load(_INCOMING, payload), ctx, raw)]
    return [_status(_load(_STATUS, payload), ctx, raw)]


def _status(f: dict[str, Any], ctx: ParseContext, raw: dict[str, Any]) -> Event:
    code = f["status"]
    try:
        key = status_code(code)
    except ValueError:
        key = code  # not a number: unknown to both tables
    status, final, words = STATUSES.get(key, (Status.UNKNOWN, False, f"unknown status {code}"))
    if key not in STATUSES and key in ctx.status_maps.get(NAME, {}):
        words = f"status {code} (SMSC_STATUS_MAP)"
    status, final = ctx.status_for(NAME, key, (status, final))
    err = f["err"]
    occurred_at = _unix_time(f["time"], f["ts"])
    event = Event(
        provider=NAME,
        kind=Kind.RECEIPT,
        status=status,
        final=final,
        message_id=f["id"],
        recipient=ctx.phone(f["phone"]),
        provider_status=code,
        description=f"{words} (err {err})" if err not in (None, "0") else words,
        occurred_at=occurred_at,
        received_at=ctx.received_at,
        raw=raw,
    )
    # One SMSC id covers every phone of a send, and `err` refines the status: both name the fact.
    # (event_id_for leaves out an `occurred_at` that only defaulted to the receipt time.)
    return dataclasses.replace(event, event_id=event_id_for(event, f["phone"], err or ""))


def _incoming(f: dict[str, Any], ctx: ParseContext, raw: dict[str, Any]) -> Event:
    sender = ctx.phone(f["phone"])
    # SMSC does not say which of our messages an incoming SMS answers, so the SMS is
    # known by its own id: the fact of this reply alone. No time goes in: SMSC also serves
    # incoming SMS through its API, whose times are written differently.
    return reply_event(
        ctx,
        NAME,
        f["id"],
        sender,
        f["mes"],
        route="callback",
        facts=(f["id"],),
        recipient=ctx.phone(f["to"]),
        occurred_at=_unix_time(f["sent"], f["time"]),
        raw=raw,
    )
