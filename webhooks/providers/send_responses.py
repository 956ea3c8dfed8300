"""What a provider answered to a send, as the user's application received it: one `queued` event per message.

`POST /api/v1/sent` hands the body here. Nothing here touches Redis or Flask.

Accepted, as the provider's own documents (../shared/providers/) write them:

- Red Oxygen's SendSMS response (redoxygen-sendsms-json-api.txt, "SendSMS API Response"):
  `{"Name": "ROX_API_Response", "Result": "0000", "Messages": {"Count": 1, "RequestId": ..,
  "1": {"SMSId": 123, "DestTn": "+61111222333", "Result": "0000", "ResultText": "Queued",
  "Timestamp": "2024-09-20T04:39:13.819Z"}}}`. `Result` "0000" is success; "2001"-"2010"
  authentication errors and "2011"-"2100" sending errors: such a message failed.
- Digitaleo's send answer (digitaleo-sms-api.txt 1.4.3, "create ... Resource created"; 3.3 the sms
  resource: `id`, `status`, `recipient`, ...): one resource, a list of them, or the list shape of 1.3.
- SMSC's answer to a send: `{"id": 12, "cnt": 2}` (JSON, `fmt=3`), or the text of
  smsc-smtp-api.txt, `OK - <n> SMS, ID - <id>` / `ERROR = N (description), ID - <id>`. It names no
  phone, so the phones the send went to come beside it. SMSC's callbacks name a message by the
  send's `id` and the phone (smsc.py): the same `message_id` here, the phone as recipient.
- Our own plain form, for any provider: `{"provider", "message_id", "recipient", "sent_at"}`,
  a list of those, or `{"messages": [...]}` (a top-level `provider` applies to each).

Which provider answered is said beside the response: `{"provider": "redoxygen", "response": {...}}`,
or `?provider=redoxygen` with the response itself as the body.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from marshmallow import ValidationError

from webhooks.events import Event, Kind, Status, event_id_for

from . import Code, ParseContext, ParseError, is_number
from .digitaleo.statuses import as_sms_id
from .redoxygen import ReceiptSchema, Timestamp, receipt_messages

MAX_MESSAGES = 1000  # per request; a Red Oxygen send has at most 500
PROVIDERS = ("redoxygen", "digitaleo", "smsc", "ogangi")
FROM_SEND = "recorded from the send response"
SENT = "sent"  # provider_status when the provider gave no code of its own

# redoxygen-sendsms-json-api.txt: Success="0000", Authentication Errors "2001"-"2010", Sending Errors "2011"-"2100".
REDOXYGEN_ERRORS = ((2001, 2010, "authentication error"), (2011, 2100, "sending error"))
# smsc-smtp-api.txt, the error table: N -> its description.
SMSC_ERRORS = {
    "1": "error in parameters",
    "2": "invalid username or password",
    "3": "insufficient funds in the account",
    "4": "IP address temporarily blocked",
    "5": "invalid date format",
    "6": "message denied (by text or sender name)",
    "7": "invalid phone number format",
    "8": "the message cannot be delivered to this number",
    "9": "more than one identical request within a minute",
}
SMSC_OK = re.compile(r"^\s*OK\s*-\s*(?P<cnt>\d+)\s*SMS\s*,\s*ID\s*-\s*(?P<id>[\w.-]+)\s*$", re.IGNORECASE)
SMSC_ERROR = re.compile(r"^\s*ERROR\s*=\s*(?P<code>\d+)\s*(?:\((?P<text>[^)]*)\))?\s*(?:,\s*ID\s*-\s*(?P<id>[\w.-]+))?")


class TooManyMessages(ParseError):
    """More than MAX_MESSAGES messages in one request (413)."""

    def __init__(self, count: int) -> None:
        super().__init__(
            {"_body": [f"at most {MAX_MESSAGES} messages per request, got {count}: post them in several requests"]}
        )
        self.count = count


@dataclasses.dataclass(frozen=True)
class _Sent:
    """One message of a send, before it becomes an event."""

    provider: str
    message_id: str
    recipient: str | None
    status: Status = Status.QUEUED
    provider_status: str = SENT
    words: str | None = None  # the provider's words for the outcome
    occurred_at: datetime | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_sent(body: Any, ctx: ParseContext, query: Mapping[str, str] | None = None) -> list[Event]:
    """One event per message the body names; ParseError naming every bad field, TooManyMessages past the limit."""
    query = query or {}
    provider = query.get("provider")
    if isinstance(body, Mapping) and "response" in body:
        provider = _envelope_provider(body, provider)
        sent = RESPONSES[provider](body["response"], _recipients(body, query))
    elif provider and provider in RESPONSES and not _plain(body):
        sent = RESPONSES[provider](body, _recipients({}, query))
    else:
        sent = _plain_messages(body, provider)
    if any(s.recipient is not None and len(s.recipient) > 64 for s in sent):
        raise ParseError({"recipient": ["a phone number is longer than 64 characters"]})  # the database keeps 64
    return [_event(s, ctx) for s in sent]


def _envelope_provider(body: Mapping[str, Any], from_query: str | None) -> str:
    provider = body.get("provider", from_query)
    if from_query and provider != from_query:
        raise ParseError({"provider": [f"?provider={from_query!r} and the body's {provider!r} disagree"]})
    if not isinstance(provider, str) or provider not in RESPONSES:
        raise ParseError(
            {
                "provider": [
                    f"must name whose response this is, one of {sorted(RESPONSES)}, got {provider!r} "
                    '(for another provider, post the plain form: {"provider", "message_id", "recipient"})'
                ]
            }
        )
    return str(provider)


def _plain(body: Any) -> bool:
    """Our plain form rather than a provider's response: a list, or an object with `message_id` or `messages`."""
    return isinstance(body, list) or (
        isinstance(body, Mapping) and ("message_id" in body or isinstance(body.get("messages"), list))
    )


def _recipients(body: Mapping[str, Any], query: Mapping[str, str]) -> list[str]:
    """The phones a send went to, beside the response: `recipients` (or SMSC's `phones`), a list or "a,b;c"."""
    value: Any = next((source[k] for source in (body, query) for k in ("recipients", "phones") if k in source), [])
    if isinstance(value, str):
        value = re.split(r"[,;]", value)
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise ParseError({"recipients": ["must be a list of phone numbers, or one string of them separated by commas"]})
    phones = [str(v).strip() for v in value if str(v).strip()]
    if len(phones) > MAX_MESSAGES:
        raise TooManyMessages(len(phones))
    if any(len(p) > 64 for p in phones):
        raise ParseError({"recipients": ["a phone number is longer than 64 characters"]})
    return phones


def _code(value: Any, name: str, errors: dict[str, list[str]], required: bool = True) -> str | None:
    """A provider code or id read as redoxygen's `Code` reads one; a message in `errors` when it is not one."""
    if value is None:
        if required:
            errors[name] = ["missing"]
        return None
    try:
        return Code(required=required).deserialize(value)
    except ValidationError as err:
        errors[name] = err.messages if isinstance(err.messages, list) else [str(err.messages)]
        return None


# --------------------------------------------------------------------------- Red Oxygen


def _redoxygen(response: Any, recipients: list[str]) -> list[_Sent]:
    if not isinstance(response, Mapping):
        raise ParseError({"response": [f"must be Red Oxygen's SendSMS response object, got {type(response).__name__}"]})
    lowered = {str(k).lower(): v for k, v in response.items()}
    result = lowered.get("result")
    if "messages" not in lowered and result not in (None, "0000", 0):
        # An authentication error refuses the whole request: no message was queued, none to record.
        text = lowered.get("resulttext") or _redoxygen_status(str(result))[1]
        raise ParseError({"Result": [f"the send was refused ({result}: {text}); no message was queued"]})
    messages = receipt_messages(response)
    if len(messages) > MAX_MESSAGES:
        raise TooManyMessages(len(messages))
    schema, sent, errors = ReceiptSchema(), [], {}
    for path, message in messages:
        if not isinstance(message, Mapping):
            errors[path.rstrip(".") or "response"] = [f"must be an object, got {type(message).__name__}"]
            continue
        try:
            f = schema.load({str(k).lower(): v for k, v in message.items()})
        except ValidationError as err:
            for key, value in err.messages_dict.items():
                errors[f"{path}{ReceiptSchema.SPELLING.get(key, key)}"] = value if isinstance(value, list) else [value]
            continue
        status, words = _redoxygen_status(f["result"])
        sent.append(
            _Sent(
                provider="redoxygen",
                message_id=f["sms_id"],
                recipient=f["dest_tn"],
                status=status,
                provider_status=f["result"],
                words=f["result_text"] or words,
                occurred_at=f["timestamp"],
                raw=dict(message),
            )
        )
    if errors:
        raise ParseError(errors)
    if not sent:
        raise ParseError({"Messages": ['no numbered message ("1": {"SMSId": ...}) in the response']})
    return sent


def _redoxygen_status(code: str) -> tuple[Status, str]:
    """The send's outcome, and the document's words for it."""
    if code == "0000":
        return Status.QUEUED, "queued"
    if is_number(code):
        for low, high, words in REDOXYGEN_ERRORS:
            if low <= int(code) <= high:
                return Status.FAILED, f"{words} ({low}-{high})"
    return Status.UNKNOWN, "not a code in Red Oxygen's document"


# --------------------------------------------------------------------------- Digitaleo


def _digitaleo(response: Any, recipients: list[str]) -> list[_Sent]:
    if isinstance(response, Mapping) and "list" in response:
        resources = response["list"]
        prefix = "list."
    elif isinstance(response, list):
        resources, prefix = response, ""
    else:
        resources, prefix = [response], ""
    if not isinstance(resources, list):
        raise ParseError({"list": [f"must be a list of sms resources, got {type(resources).__name__}"]})
    if len(resources) == 1 and isinstance(resources[0], Mapping) and "id" not in resources[0]:
        refused = resources[0]
        if "message" in refused or "status" in refused:  # the error body of 1.6: {"status": 401, "message": ...}
            raise ParseError(
                {"id": [f"the send was refused ({refused.get('status')}: {refused.get('message')}); no id to record"]}
            )
    if len(resources) > MAX_MESSAGES:
        raise TooManyMessages(len(resources))
    if recipients and len(recipients) != len(resources):
        raise ParseError(
            {"recipients": [f"{len(recipients)} phones for {len(resources)} messages: give one per message, in order"]}
        )
    sent, errors = [], {}
    for index, resource in enumerate(resources):
        path = f"{prefix}{index}." if len(resources) > 1 or prefix else ""
        if not isinstance(resource, Mapping):
            errors[path.rstrip(".") or "response"] = [f"must be an sms resource object, got {type(resource).__name__}"]
            continue
        sms_id = as_sms_id(resource.get("id"))
        if sms_id is None:
            errors[f"{path}id"] = [f"must be the numeric SMS id, got {resource.get('id')!r}"]
            continue
        recipient = resource.get("recipient") or (recipients[index] if recipients else None)
        code = resource.get("status")
        failed = code == "ko"  # 2.8: "ko" never arrives; any other code is on its way
        sent.append(
            _Sent(
                provider="digitaleo",
                message_id=sms_id,
                recipient=str(recipient) if isinstance(recipient, (str, int)) else None,
                status=Status.FAILED if failed else Status.QUEUED,
                provider_status=code if isinstance(code, str) and code.strip() else SENT,
                raw=dict(resource),
            )
        )
    if errors:
        raise ParseError(errors)
    if not sent:
        raise ParseError({"id": ["no sms resource in the response"]})
    return sent


# --------------------------------------------------------------------------- SMSC


def _smsc(response: Any, recipients: list[str]) -> list[_Sent]:
    answer = _smsc_answer(response)
    errors: dict[str, list[str]] = {}
    send_id = _code(answer.get("id"), "id", errors, required=False)
    error_code = _code(answer.get("error_code"), "error_code", errors, required=False)
    if errors:
        raise ParseError(errors)
    phones = recipients or _smsc_phones(answer.get("phones"))
    if error_code is not None or "error" in answer:
        words = SMSC_ERRORS.get(error_code or "", str(answer.get("error") or "an error"))
        if send_id is None:
            raise ParseError({"error": [f"the send was refused (ERROR = {error_code}: {words}); no id to record"]})
        status, provider_status = Status.FAILED, f"error {error_code}" if error_code else "error"
    else:
        if send_id is None:
            raise ParseError({"id": ['missing: SMSC\'s answer gives the send\'s id ({"id": 12, "cnt": 2})']})
        status, provider_status, words = Status.QUEUED, SENT, None
    if not phones:
        raise ParseError(
            {"recipients": ["SMSC's answer names no phone: give the phones the send went to (its `phones` parameter)"]}
        )
    if len(phones) > MAX_MESSAGES:
        raise TooManyMessages(len(phones))
    raw = {k: v for k, v in answer.items() if k != "phones"}
    return [
        _Sent("smsc", send_id, phone, status, provider_status, words, raw={**raw, "phone": phone}) for phone in phones
    ]


def _smsc_answer(response: Any) -> dict[str, Any]:
    """The JSON answer as it is, or the text answer of smsc-smtp-api.txt read into the same fields."""
    if isinstance(response, Mapping):
        return dict(response)
    if isinstance(response, str):
        if ok := SMSC_OK.match(response):
            return {"id": ok["id"], "cnt": int(ok["cnt"])}
        if error := SMSC_ERROR.match(response):
            return {"error": error["text"] or "", "error_code": error["code"], "id": error["id"]}
    raise ParseError(
        {"response": ['must be SMSC\'s answer: {"id": ..., "cnt": ...} or the text "OK - <n> SMS, ID - <id>"']}
    )


def _smsc_phones(value: Any) -> list[str]:
    """The `phones` list of an answer with op=1 ({"phone": ..., ...} each), when SMSC gave one."""
    if not isinstance(value, list):
        return []
    return [str(p["phone"]) for p in value if isinstance(p, Mapping) and isinstance(p.get("phone"), (str, int))]


# --------------------------------------------------------------------------- the plain form


def _plain_messages(body: Any, provider: str | None) -> list[_Sent]:
    if isinstance(body, Mapping) and "messages" in body:
        provider = body.get("provider", provider)
        entries, prefix = body["messages"], "messages."
    elif isinstance(body, list):
        entries, prefix = body, ""
    else:
        entries, prefix = [body], ""
    if not isinstance(entries, list) or not entries:
        raise ParseError(
            {
                "_body": [
                    'expected {"provider": ..., "response": {...}}, or messages as '
                    '{"provider", "message_id", "recipient"} (one, a list, or {"messages": [...]})'
                ]
            }
        )
    if len(entries) > MAX_MESSAGES:
        raise TooManyMessages(len(entries))
    sent, errors = [], {}
    for index, entry in enumerate(entries):
        path = f"{prefix}{index}." if prefix or len(entries) > 1 or isinstance(body, list) else ""
        if not isinstance(entry, Mapping):
            errors[path.rstrip(".") or "_body"] = [f"must be an object, got {type(entry).__name__}"]
            continue
        found: dict[str, list[str]] = {}
        name = entry.get("provider", provider)
        if name not in PROVIDERS:
            found["provider"] = [f"must be one of {list(PROVIDERS)}, got {name!r}"]
        message_id = _code(entry.get("message_id"), "message_id", found)
        recipient = _code(entry.get("recipient"), "recipient", found, required=False)
        sent_at = _sent_at(entry.get("sent_at"), found)
        if found:
            errors.update({f"{path}{k}": v for k, v in found.items()})
            continue
        assert message_id is not None  # _code filled `found` otherwise
        sent.append(_Sent(str(name), message_id, recipient, occurred_at=sent_at, raw=dict(entry)))
    if errors:
        raise ParseError(errors)
    return sent


def _sent_at(value: Any, errors: dict[str, list[str]]) -> datetime | None:
    if value is None:
        return None
    try:
        parsed: datetime = Timestamp().deserialize(value)
    except ValidationError as err:
        errors["sent_at"] = err.messages if isinstance(err.messages, list) else [str(err.messages)]
        return None
    return parsed.astimezone(timezone.utc)


# --------------------------------------------------------------------------- events


def _event(sent: _Sent, ctx: ParseContext) -> Event:
    final = sent.status is Status.FAILED
    description = f"{sent.words} ({FROM_SEND})" if sent.words else FROM_SEND.capitalize()
    event = Event(
        provider=sent.provider,
        kind=Kind.RECEIPT,
        status=sent.status,
        final=final,
        message_id=sent.message_id,
        recipient=ctx.phone(sent.recipient),
        provider_status=sent.provider_status,
        description=description,
        occurred_at=sent.occurred_at,
        received_at=ctx.received_at,
        raw=sent.raw,
    )
    # "send" keeps these ids apart from any callback's; the phone tells apart the messages of one SMSC send.
    return dataclasses.replace(event, event_id=event_id_for(event, "send", event.recipient or ""))


RESPONSES: dict[str, Callable[[Any, list[str]], list[_Sent]]] = {
    "redoxygen": _redoxygen,
    "digitaleo": _digitaleo,
    "smsc": _smsc,
}
