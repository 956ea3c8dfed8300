"""Red Oxygen (completesms.net) receipt and reply callbacks.

Documents: ../shared/providers/redoxygen-sendsms-json-api.txt (the send request names
`ReceiptCallbackURL` and `ReplyCallbackURL`; the send response gives each message's
`SMSId`, `DestTn`, `Result`, `ResultText`, `Timestamp`) and Red Oxygen's "HTTP Reply
Service" page.

Replies (ReplyType H) come as a form POST, an XML body or a query string, with
`CustomerId`, `EmailId`, `SmsId` (the SMS answered), `UserEmail`, `UserName`,
`DestTN` (the phone that replied), `DestName`, `ReplyURL`, `ReplyText`. The receiver
answers an HTML body holding `<RESULT>000</RESULT>`, or another code when it could not
take the data.

The receipt's wire format is not published, so a receipt is read from JSON, a form,
XML or a query string, in the numbered shape of the send response (`Count`, `"1": {...}`,
with or without a `Messages` wrapper), as a list, or as one flat message. Field names
match case-insensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from webhooks.events import FINAL_STATUSES, Event, Kind, Status

from . import Code, ParseContext, ParseError, is_number, reply_event

NAME = "redoxygen"


def _receipt_status(code: str) -> Status:
    """0000 delivered; 2011-2100 sending errors; 2001-2010 authentication errors (not sent either)."""
    if code == "0000":
        return Status.DELIVERED
    if is_number(code) and 2001 <= int(code) <= 2100:
        return Status.FAILED
    return Status.UNKNOWN


def status_code(text: str) -> str:
    """A `Result` code as the receipt parser compares it, for REDOXYGEN_STATUS_MAP: four digits, zero-padded."""
    if not is_number(text):
        raise ValueError("is not a number Red Oxygen sends (its Result codes are numbers such as 0000 or 2011)")
    return text.zfill(4)


class Timestamp(fields.DateTime):
    """ISO 8601 as in the send response (`2024-09-20T04:39:13.819Z`); no zone means UTC."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise ValidationError(f"must be an ISO 8601 string, got {type(value).__name__}")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(f"must be an ISO 8601 time such as 2024-09-20T04:39:13.819Z, got {value!r}") from None
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


class ReceiptSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # providers add fields

    sms_id = Code(required=True, data_key="smsid")
    dest_tn = Code(load_default=None, data_key="desttn")
    result = Code(required=True, pad=4, data_key="result")
    result_text = fields.String(load_default=None, data_key="resulttext")
    timestamp = Timestamp(load_default=None, data_key="timestamp")

    # The send response's spelling, used to name bad fields in errors.
    SPELLING = {
        "smsid": "SMSId",
        "desttn": "DestTn",
        "result": "Result",
        "resulttext": "ResultText",
        "timestamp": "Timestamp",
    }


class ReplySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    sms_id = Code(required=True, data_key="smsid")
    dest_tn = Code(required=True, data_key="desttn")
    reply_text = fields.String(required=True, data_key="replytext")
    email_id = Code(load_default=None, data_key="emailid")
    dest_name = fields.String(load_default=None, data_key="destname")

    # The HTTP Reply Service's spelling.
    SPELLING = {
        "smsid": "SmsId",
        "desttn": "DestTN",
        "replytext": "ReplyText",
        "emailid": "EmailId",
        "destname": "DestName",
    }


_RECEIPT = ReceiptSchema()
_REPLY = ReplySchema()
_ENVELOPE_KEYS = {"count", "requestid", "name", "version", "result", "resulttext"}


def _lower(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in data.items()}


def _unflatten(fields_: Mapping[str, Any]) -> dict[str, Any]:
    """Form and query fields like `Messages.1.SMSId=5` become nested dicts."""
    nested: dict[str, Any] = {}
    for key, value in fields_.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return nested


def receipt_messages(payload: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The messages in a receipt payload, each with the path that names it in errors."""
    data = _lower(_unflatten(payload))
    container: Any = data
    prefix = ""
    if "smsid" not in data and "messages" in data:
        container, prefix = data["messages"], "Messages."
    if isinstance(container, list):
        return [(f"{prefix}{i}.", m) for i, m in enumerate(container)]
    if not isinstance(container, dict) or "smsid" in _lower(container):
        return [(prefix, container)]  # one flat message: numbered keys beside its SMSId are extra fields
    numbered = sorted((k for k in container if is_number(str(k))), key=int)
    if numbered:
        return [(f"{prefix}{k}.", container[k]) for k in numbered]
    lowered = _lower(container)
    if "smsid" not in lowered:
        # XML has no numbered element names: take `<Message>` children (one or a list).
        nested = [v for k, v in lowered.items() if k not in _ENVELOPE_KEYS and isinstance(v, (dict, list))]
        if len(nested) == 1:
            items = nested[0] if isinstance(nested[0], list) else [nested[0]]
            return [(f"{prefix}{i}.", m) for i, m in enumerate(items)]
    return [(prefix, container)]


def _load(schema: Schema, message: Any, path: str) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise ParseError({path.rstrip(".") or "_body": [f"must be an object, got {type(message).__name__}"]})
    try:
        return schema.load(_lower(message))
    except ValidationError as err:
        raise ParseError(_named(err.messages, path, schema)) from None


def _named(messages: Any, path: str, schema: Schema) -> dict[str, list[str]]:
    """marshmallow's errors keyed by the provider's spelling of each field (`1.SMSId`)."""
    spelling = schema.SPELLING  # type: ignore[attr-defined]
    return {f"{path}{spelling.get(k, k)}": (v if isinstance(v, list) else [str(v)]) for k, v in messages.items()}


def parse_receipt(payload: Mapping[str, Any], ctx: ParseContext) -> list[Event]:
    """One event per message in the receipt; every bad field of every message is reported at once."""
    messages = receipt_messages(payload)
    events, errors = [], {}
    for path, message in messages:
        try:
            fields_ = _load(_RECEIPT, message, path)
        except ParseError as err:
            errors.update(err.errors)
            continue
        builtin = _receipt_status(fields_["result"])
        status, final = ctx.status_for(NAME, fields_["result"], (builtin, builtin in FINAL_STATUSES))
        events.append(
            Event(
                provider=NAME,
                kind=Kind.RECEIPT,
                status=status,
                final=final,
                message_id=fields_["sms_id"],
                recipient=ctx.phone(fields_["dest_tn"]),
                provider_status=fields_["result"],
                description=fields_["result_text"],
                occurred_at=fields_["timestamp"],
                received_at=ctx.received_at,
                raw=dict(message),
            )
        )
    if errors:
        raise ParseError(errors)
    if not events:
        raise ParseError({"SMSId": ["no message in the receipt"]})
    return events


def parse_reply(
    payload: Mapping[str, Any], ctx: ParseContext, route: str = "callback", facts: tuple[str | None, ...] = ()
) -> list[Event]:
    """One reply event: by the HTTP Reply Service (`route` callback), or read from its email copy (email, `facts`)."""
    fields_ = _load(_REPLY, payload, "")
    sender = ctx.phone(fields_["dest_tn"])
    # Red Oxygen gives a reply no time; its EmailId is the one fact of this reply a redelivered
    # callback repeats and a second reply with the same words does not. The email copy's EmailId
    # need not be the callback's, so copies are matched by Ingest.store across routes, not by id.
    return [
        reply_event(
            ctx,
            NAME,
            fields_["sms_id"],
            sender,
            fields_["reply_text"],
            route=route,
            facts=(fields_["email_id"], *facts),
            description=f"Reply from {fields_['dest_name']}" if fields_["dest_name"] else None,
            raw=dict(payload),
        )
    ]


# Red Oxygen reads the outcome from `<RESULT>` in an HTML body.
RESULT_OK = "000"
RESULT_REFUSED = "100"
