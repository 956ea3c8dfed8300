"""Provider emails back into events: the path that catches what callbacks miss. Pure: bytes in, events out.

What the documents say, and what we assume where they stop:

- Red Oxygen (redoxygen-sendsms-json-api.txt): "If NULL or Callback Fails, Receipt will be
  forwarded to email", and the same for replies; its Email API page: "Replies from the SMS
  messages are automatically sent as emails back to the originator's email address". The
  layout of those emails is not published. We read the fields the callbacks carry (receipt:
  `SMSId`, `DestTn`, `Result`, `ResultText`, `Timestamp`; reply: `SmsId`, `DestTN`,
  `ReplyText`, `EmailId`, `CustomerId`, ...) wherever the body writes them one per line as
  `Name: value`, `Name = value` or in a two-cell HTML table row, names matched
  case-insensitively. `ReplyText` runs on to the next field (replies have several lines).
  A field name seen again starts the next message, so one email may list several receipts.
  The events are built by the callback parsers themselves: a receipt gets the callback's id.
- Digitaleo (digitaleo-sms-api.txt, section 2.10): subject "Response from 801 555 xxxx to SMS
  #xxx"; "the body ... contains the text message that was sent along with its response", HTML
  or TEXT. The body's layout is not published either: the response is the text after a
  `Response:` (or `Réponse:`, `Reply:`, `Answer:`) label, or, without labels, the second of
  exactly two paragraphs (the sent text comes first).
- A reply's id holds the email's Message-ID (else its Date): the email redelivered is one
  reply; its copy by callback or API is matched by words (events.ReplyCopy, Ingest.store).
- Anything else, or a recognised email whose fields do not parse, becomes one `unknown` event
  (kind and status `unknown`) with the headers, the text and the raw message (capped at
  `KEEP_CHARS`) in `raw`: never dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import datetime
from email.message import Message

from webhooks.events import Event, Kind, Status, event_id_for
from webhooks.providers import ParseContext, ParseError, redoxygen, reply_event
from webhooks.providers.digitaleo import statuses
from webhooks.telemetry.redaction import Secrets, scrub

from .text import body_text, header, read_headers, read_message

NAME = "email"  # the provider of an email no provider's format matched
KEEP_CHARS = 32 * 1024  # of the raw message and of its text, in an unknown event

# The callbacks' field names (Red Oxygen's HTTP Reply Service and the send response), lower-cased.
_REDOXYGEN_FIELDS = frozenset(
    {
        "customerid",
        "emailid",
        "smsid",
        "useremail",
        "username",
        "desttn",
        "destname",
        "replyurl",
        "replytext",
        "result",
        "resulttext",
        "timestamp",
    }
)
_MULTILINE_FIELDS = frozenset({"replytext", "resulttext"})
_FIELD_LINE = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z ]{0,24}?)\s*(?:[:=]|\t)\s*(?P<value>.*?)\s*$")

_DIGITALEO_SUBJECT = re.compile(
    r"Response from\s+(?P<phone>\+?\d[\d .()/-]*?)\s+to\s+SMS\s*#\s*(?P<sms_id>[A-Za-z0-9_-]+)", re.IGNORECASE
)
# A label ends with a colon, or is the first cell of an HTML table row (a tab once reduced to text).
_RESPONSE_LABEL = re.compile(r"^\s*(?:response|r[ée]ponse|reply|answer)\s*(?::|\t)\s*(?P<rest>.*)$", re.IGNORECASE)
_OTHER_LABEL = re.compile(r"^\s*[^\s:]{1,20}(?: [^\s:]{1,20}){0,3}\s*(?::\s|\t)")
_SIGNATURE = "-- "


def parse_email(raw: bytes, ctx: ParseContext, secret: Secrets = None) -> list[Event]:
    """The events an email carries; an email we cannot read is one `unknown` event, never an error."""
    try:
        message: Message = read_message(raw)
        text = scrub(body_text(message), secret)  # a forwarded ReplyURL carries our ?token=
    except RecursionError:
        message = read_headers(raw)
        subject = scrub(header(message, "subject"), secret)
        return [_unknown(raw, message, subject, "", "MIME parts nested too deeply to read", ctx, secret, NAME, None)]
    subject = scrub(header(message, "subject"), secret)
    provider, message_id, reason = NAME, None, "neither Red Oxygen fields nor a Digitaleo subject"
    try:
        found = _DIGITALEO_SUBJECT.search(subject)
        if found:
            provider, message_id = statuses.NAME, found["sms_id"]
            reason = "no response found in the body of a Digitaleo response email"
            return [_digitaleo_reply(message, found, text, ctx, secret)]
        events = _redoxygen_events(text, ctx, email_identity(message))
        if events:
            return events
    except _NotFound:
        pass
    except ParseError as err:
        provider, reason = redoxygen.NAME, f"Red Oxygen fields that do not parse: {err}"
    return [_unknown(raw, message, subject, text, reason, ctx, secret, provider, message_id)]


class _NotFound(Exception):
    """The email is a provider's, but what we need is not in it."""


def fields_by_line(text: str) -> list[dict[str, str]]:
    """Red Oxygen's callback fields written one per line, as a list of messages (a name seen again starts one)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    seen: set[str] = set()
    running: str | None = None  # the multi-line field that takes the lines that follow
    for line in text.splitlines():
        match = _FIELD_LINE.match(line)
        key = match["name"].replace(" ", "").lower() if match else ""
        if match and key in _REDOXYGEN_FIELDS:
            if key in seen:
                records.append(current)
                current, seen = {}, set()
            name = match["name"].replace(" ", "")
            current[name], running = match["value"], (name if key in _MULTILINE_FIELDS else None)
            seen.add(key)
        elif running is not None:
            if line.rstrip() == _SIGNATURE.rstrip():
                running = None
            else:
                current[running] += "\n" + line
    records.append(current)
    cleaned = [{k: v.strip() for k, v in record.items()} for record in records]
    return [r for r in cleaned if "smsid" in {k.lower() for k in r}]


def email_identity(message: Message) -> str | None:
    """The email's own id for the replies it carries: its Message-ID, else its Date header, else None.

    The same email by relay, by SMTP or delivered twice keeps both; another email does not.
    """
    return header(message, "message-id") or header(message, "date") or None


def _redoxygen_events(text: str, ctx: ParseContext, identity: str | None) -> list[Event]:
    events = []
    for position, record in enumerate(fields_by_line(text)):
        names = {k.lower() for k in record}
        if "replytext" in names:
            # With the position: one email listing the same words twice carries two replies.
            facts = (identity, str(position)) if identity else ()
            events += redoxygen.parse_reply(record, ctx, route="email", facts=facts)
        elif "result" in names:
            events += redoxygen.parse_receipt(record, ctx)
    return events


def response_text(text: str) -> str | None:
    """The phone's response in the body of a Digitaleo response email, or None when we cannot tell."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        labelled = _RESPONSE_LABEL.match(line)
        if labelled:
            found = [labelled["rest"]]
            for following in lines[i + 1 :]:
                if following.rstrip() == _SIGNATURE.rstrip() or _OTHER_LABEL.match(following):
                    break
                found.append(following)
            return "\n".join(found).strip() or None
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return paragraphs[1] if len(paragraphs) == 2 else None


def _digitaleo_reply(message: Message, subject: re.Match[str], text: str, ctx: ParseContext, secret: Secrets) -> Event:
    response = response_text(text)
    if response is None:
        raise _NotFound()
    sender = ctx.phone(subject["phone"])
    # The same reply read from Digitaleo's API is matched with this copy by Ingest.store.
    return reply_event(
        ctx,
        statuses.NAME,
        subject["sms_id"],
        sender,
        response,
        route="email",
        facts=(email_identity(message),),
        occurred_at=_date(message),
        raw={
            "subject": subject.string,
            "from": scrub(header(message, "from"), secret),
            "date": header(message, "date"),
            "body": text[:KEEP_CHARS],
        },
    )


def _date(message: Message) -> datetime | None:
    """The Date header as an aware datetime, or None (then the event's time is when we received it)."""
    try:
        value = message.get("date")
        moment = getattr(value, "datetime", None)
    except Exception:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _unknown(
    raw: bytes,
    message: Message,
    subject: str,
    text: str,
    reason: str,
    ctx: ParseContext,
    secret: Secrets,
    provider: str,
    message_id: str | None,
) -> Event:
    mime = scrub(raw.decode("utf-8", errors="replace"), secret)
    # The Message-ID (else the bytes) identifies the email: the same email by relay and by SMTP is one event.
    identity = header(message, "message-id") or hashlib.sha256(raw).hexdigest()
    event = Event(
        provider=provider,
        kind=Kind.UNKNOWN,
        status=Status.UNKNOWN,
        message_id=message_id or "email-" + hashlib.sha256(identity.encode()).hexdigest()[:24],
        description=f"unrecognised email: {reason}"[:1000],
        received_at=ctx.received_at,
        raw={
            "from": scrub(header(message, "from"), secret),
            "to": scrub(header(message, "to"), secret),
            "subject": subject,
            "date": header(message, "date"),
            "message_id": scrub(header(message, "message-id"), secret),
            "text": text[:KEEP_CHARS],
            "mime": mime[:KEEP_CHARS],
            "mime_truncated": len(mime) > KEEP_CHARS,
        },
    )
    return dataclasses.replace(event, event_id=event_id_for(event, identity))
