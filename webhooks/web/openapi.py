"""The OpenAPI 3 description of every endpoint, served at GET /openapi.json.

One dict per path in PATHS: a new endpoint adds its own entry (with `callback(...)` for a
provider callback, which brings the shared error answers and the secret) and nothing else.
"""

from __future__ import annotations

from typing import Any

from webhooks.providers.send_responses import MAX_MESSAGES, PROVIDERS

JSON = "application/json"
HTML = "text/html"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, html: bool = False, headers: dict | None = None) -> dict:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if html:
        content[HTML] = {"schema": {"type": "string", "description": "<html><body><RESULT>…</RESULT>…"}}
    answer: dict[str, Any] = {"description": description, "content": content}
    if headers:
        answer["headers"] = headers
    return answer


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}}
# What every provider callback may answer besides 200, with the reason (webhooks/endpoint.py).
CALLBACK_ERRORS = {
    "400": "The callback is not what the provider sends, or not in its declared charset; `fields` names what is wrong",
    "401": "The secret is missing or wrong",
    "403": "The client address is not in ALLOWED_IPS",
    "413": "The body is over 64 KiB",
    "415": "A Content-Type that cannot be read",
    "429": "Too many failed authentications from this address (Retry-After)",
    "503": "Redis cannot be reached: nothing was stored, retry later (Retry-After)",
}
BODY_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/xml",
    "text/xml",
]


def _as_text(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as a form, XML or query string carries it: its string variants (any text if none)."""
    if "type" not in schema and "oneOf" not in schema:
        return schema  # not checked: any text, as any JSON value
    strings = [v for v in schema.get("oneOf", [schema]) if v.get("type") == "string"]
    if not strings:
        return {"type": "string"}
    return strings[0] if len(strings) == 1 else {"anyOf": strings}


def _declared(media_type: str, charset: str | None) -> str:
    """`media_type` with `charset` (multipart parts are UTF-8 whatever the Content-Type says)."""
    return f"{media_type}; charset={charset}" if charset and media_type != "multipart/form-data" else media_type


def _as_json(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    """A field's schema in a JSON body: an optional field may also be null (marshmallow's load_default=None)."""
    if required or "nullable" in schema or ("type" not in schema and "oneOf" not in schema):
        return schema
    return {**schema, "nullable": True}


def _cases(alternatives: tuple[dict[str, Any], ...], convert: Any) -> dict[str, Any]:
    """`anyOf` of the shapes a callback may take (a status or an incoming SMS), each its required fields."""
    if not alternatives:
        return {}
    return {
        "anyOf": [
            {
                "required": list(shape.get("required", ())),
                "properties": {name: convert(schema, True) for name, schema in shape.get("properties", {}).items()},
                **({"not": shape["not"]} if "not" in shape else {}),
            }
            for shape in alternatives
        ]
    }


def callback(
    summary: str,
    fields: dict[str, Any],
    html: bool = False,
    methods: tuple[str, ...] = ("post",),
    required: tuple[str, ...] = (),
    shapes: tuple[dict[str, Any], ...] = (),
    charset: str | None = None,
) -> dict[str, Any]:
    """A provider callback's path item: its fields (body or query string), 200 and the shared errors.

    `html`: the provider reads an HTML `<RESULT>` body unless the client sends `Accept: application/json`.
    `shapes`: when the fields needed depend on what the callback is, each shape's `required` and
    `properties` (at least one shape must match); in a query string they make it one exploded object.
    `charset`: the one the text bodies declare (SMSC reads undeclared ones in the URL's, windows-1251).
    """
    text_fields = {name: _as_text(schema) for name, schema in fields.items()}
    json_fields = {name: _as_json(schema, name in required) for name, schema in fields.items()}
    json_body = {"type": "object", "properties": json_fields, "required": list(required)}
    json_body.update(_cases(shapes, _as_json))
    text_body = {"type": "object", "properties": text_fields, "required": list(required)}
    text_body.update(_cases(shapes, lambda schema, _: _as_text(schema)))
    responses = {
        "200": _json(_ref("Accepted"), "Every event is in Redis (a repeat is acknowledged as a duplicate)", html)
    }
    for status, reason in CALLBACK_ERRORS.items():
        retry = RETRY_AFTER if status in ("429", "503") else None
        responses[status] = _json(_ref("Error"), reason, html, retry)
    item: dict[str, Any] = {}
    for method in methods:
        operation: dict[str, Any] = {
            "summary": summary,
            "security": [{"token": []}, {"basic": []}],
            "responses": responses,
        }
        if method == "get" and shapes:
            # One object, each property its own `name=value` (style form, explode): a query of fields.
            query = {"name": "fields", "in": "query", "style": "form", "explode": True, "schema": text_body}
            operation["parameters"] = [{**query, "required": True}]
        elif method == "get":
            operation["parameters"] = [
                {"name": name, "in": "query", "required": name in required, "schema": schema}
                for name, schema in text_fields.items()
            ]
        else:
            # Forms and XML carry only text: their fields are strings (a JSON body may also use numbers).
            # (The fields may also come in the query string instead; a POST without either is a 400.)
            operation["requestBody"] = {
                "required": True,
                "content": {
                    _declared(t, charset): {"schema": json_body if t == JSON else text_body} for t in BODY_TYPES
                },
            }
        item[method] = operation
    return item


# A provider code or id (redoxygen.Code): a non-blank string or a whole number, at most 64 characters.
# "Non-blank" as Python's str.strip() sees it, which is not the regex `\S` (U+0085, U+001C-U+001F).
_NON_BLANK = "[^\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
_CODE = {
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _NON_BLANK},
        {"type": "integer", "minimum": -(10**63 - 1), "maximum": 10**64 - 1},
    ]
}
_TEXT = {"type": "string"}
_KEPT = {"description": "kept in the event's `raw` as sent; not checked"}
# SMSC and OGANGI send an absent value as an empty field (a form's `x=`, XML's `<x/>`): read as missing.
_CODE_OR_EMPTY = {"oneOf": [*_CODE["oneOf"], {"type": "string", "maxLength": 0}]}
_DATE = {"type": "string", "format": "date-time", "description": "ISO 8601 with its UTC offset"}


# OGANGI statuses that say a phone sent the message (ogangi.INBOUND_STATUSES), as status_code() compares them.
_INBOUND = {
    "type": "string",
    "pattern": "^\\s*([Rr][Ee][Cc][Ee][Ii][Vv][Ee][Dd]|[Ii][Nn][Bb][Oo][Uu][Nn][Dd]|[Mm][Oo])\\s*$",
}


def _ping(item: dict[str, Any]) -> dict[str, Any]:
    """A ping stores no event: its 200 says which SMS was recorded and whether a sync was scheduled."""
    ok = _json(
        {
            "type": "object",
            "required": ["accepted", "sms_id", "sync_scheduled"],
            "properties": {
                "accepted": {"type": "integer"},
                "sms_id": {"type": "string"},
                "sync_scheduled": {"type": "boolean"},
            },
        },
        "The ping is in Redis; the worker will ask the API",
    )
    return {
        method: {**operation, "responses": {**operation["responses"], "200": ok}} for method, operation in item.items()
    }


def _ci(word: str) -> str:
    """`word` as a case-insensitive regex (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# What webhooks/email/text.py's looks_like_email wants: a From, To, Subject, Date, Message-ID or
# Content-Type header among the header lines that open the message (before the first blank line).
_EMAIL_HEADER = "(" + "|".join(_ci(h) for h in ("From", "To", "Subject", "Date", "Message-ID", "Content-Type")) + ")"
_EMAIL = {
    "type": "string",
    "pattern": "^([!-9;-~]+:[^\\r\\n]*\\r?\\n([ \\t][^\\r\\n]*\\r?\\n)*)*" + _EMAIL_HEADER + ":",
    "description": "an RFC 822 message: header lines, among them From, To, Subject, Date, Message-ID or "
    "Content-Type, then a blank line and the body",
}
_BLANK = {"type": "string", "pattern": "^[\\t\\n\\v\\f\\r ]*$"}


def _relay() -> dict[str, Any]:
    """A relay's form: the raw message in `body-mime` (else `email`), or Mailgun's parsed fields."""
    parsed = ("body-plain", "stripped-text", "body-html")
    headers = ("subject", "from", "sender", "recipient", "message-headers")
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in ("body-mime", "email", *parsed, *headers)},
        "anyOf": [
            {"required": ["body-mime"], "properties": {"body-mime": _EMAIL}},
            {"required": ["email"], "properties": {"body-mime": _BLANK, "email": _EMAIL}},
            {
                "properties": {"body-mime": _BLANK, "email": _BLANK},
                "anyOf": [
                    {"required": [name], "properties": {name: {"type": "string", "pattern": _NON_BLANK}}}
                    for name in parsed
                ],
            },
        ],
    }


def _email(summary: str) -> dict[str, Any]:
    relay = _relay()
    errors = {
        **CALLBACK_ERRORS,
        "413": "The email is over INBOUND_EMAIL_MAX_BYTES",
        "400": "An empty body, a form without the fields above, or bytes with no email header",
    }
    responses = {
        "200": _json(
            _ref("Accepted"),
            "The email's events are in Redis (an email that cannot be read is stored as one `unknown` event)",
        )
    }
    for status, reason in errors.items():
        responses[status] = _json(_ref("Error"), reason, headers=RETRY_AFTER if status in ("429", "503") else None)
    raw = {"schema": _EMAIL}
    return {
        "post": {
            "summary": summary,
            "security": [{"token": []}, {"basic": []}],
            "responses": responses,
            "requestBody": {
                "required": True,
                "content": {
                    "message/rfc822": raw,
                    "text/plain": raw,
                    "application/octet-stream": raw,
                    "application/x-www-form-urlencoded": {"schema": relay},
                    "multipart/form-data": {"schema": relay},
                },
            },
        }
    }


def _sent_envelopes() -> list[dict[str, Any]]:
    """`{"provider", "response"}`, one per provider: the send response as send_responses.py reads it."""
    phone_list = {"type": "array", "items": _CODE, "minItems": 1, "maxItems": MAX_MESSAGES}
    phone_text = {"type": "string", "maxLength": 64, "pattern": "[^,; \\t]", "description": "phones, comma-separated"}
    phones = {"oneOf": [phone_list, phone_text]}
    nullable_code = {**_CODE, "nullable": True}
    receipt = {  # a numbered message of Red Oxygen's response (redoxygen.ReceiptSchema)
        "type": "object",
        "required": ["SMSId", "Result"],
        "properties": {
            "SMSId": _CODE,
            "DestTn": nullable_code,
            "Result": _CODE,
            "ResultText": {"type": "string", "nullable": True},
            "Timestamp": {**_DATE, "nullable": True},
        },
    }
    numbered = {
        "type": "object",
        "required": ["1"],
        "properties": {"1": receipt},
        "patternProperties": {"^[0-9]+$": receipt},
        "description": f"numbered messages, at most {MAX_MESSAGES} (413 beyond)",
    }
    sms_id = {
        "oneOf": [
            {"type": "string", "pattern": "^[0-9]{1,20}$"},
            {"type": "integer", "minimum": 0, "maximum": 10**20 - 1},
        ]
    }
    resource = {"type": "object", "required": ["id"], "properties": {"id": sms_id}}
    resources = {"type": "array", "items": resource, "minItems": 1, "maxItems": MAX_MESSAGES}
    smsc_text = "^\\s*" + _ci("OK") + "\\s*-\\s*[0-9]+\\s*" + _ci("SMS") + "\\s*,\\s*" + _ci("ID")
    smsc_text += "\\s*-\\s*[A-Za-z0-9_.-]+\\s*$"
    smsc_answer = {
        "oneOf": [
            {
                "type": "object",
                "required": ["id"],
                "properties": {"id": _CODE, "cnt": _KEPT, "error_code": nullable_code},
            },
            {"type": "string", "pattern": smsc_text, "description": "OK - <n> SMS, ID - <id>"},
        ]
    }

    def envelope(name: str, response: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["provider", "response"],
            "properties": {"provider": {"type": "string", "enum": [name]}, "response": response},
            **more,
        }

    return [
        envelope("redoxygen", {"type": "object", "required": ["Messages"], "properties": {"Messages": numbered}}),
        # One phone per resource, in order, when the resources name none: only the resources are described.
        envelope(
            "digitaleo",
            {
                "oneOf": [
                    {**resource, "not": {"required": ["list"]}},
                    resources,
                    {"type": "object", "required": ["list"], "properties": {"list": resources}},
                ]
            },
            **{"not": {"anyOf": [{"required": ["recipients"]}, {"required": ["phones"]}]}},
        ),
        # SMSC's answer names no phone: the phones the send went to come beside it.
        envelope(
            "smsc",
            smsc_answer,
            anyOf=[
                {"required": ["recipients"], "properties": {"recipients": phones}},
                {"required": ["phones"], "properties": {"phones": phones}, "not": {"required": ["recipients"]}},
            ],
        ),
    ]


def _sent() -> dict[str, Any]:
    """POST /api/v1/sent (webhooks/web/sent.py): a provider's send response, or the plain form; bearer token."""
    provider = {"type": "string", "enum": list(PROVIDERS)}
    entry = {
        "type": "object",
        "required": ["message_id"],
        "properties": {
            "provider": {**provider, "description": "or the list's"},
            "message_id": _CODE,
            "recipient": {**_CODE, "nullable": True},
            "sent_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    }
    message = {**entry, "required": ["provider", "message_id"]}
    listing = {"type": "array", "items": message, "minItems": 1, "maxItems": MAX_MESSAGES}
    wrapped = {
        "type": "object",
        "required": ["messages"],
        "properties": {"provider": provider, "messages": {**listing, "items": entry}},
        # The provider once for the list, or in every message (a message's own wins).
        "anyOf": [{"required": ["provider"]}, {"properties": {"messages": {"items": {"required": ["provider"]}}}}],
    }
    errors = {
        "400": "The body is not a send response or the plain form; `fields` names every bad field",
        "401": "The bearer token is missing or wrong (WWW-Authenticate: Bearer)",
        "404": "The API is off: API_TOKENS is not set",
        "413": f"The body is over 1 MiB, or names more than {MAX_MESSAGES} messages",
        "415": "The body is not JSON",
        "429": CALLBACK_ERRORS["429"],
        "503": CALLBACK_ERRORS["503"],
    }
    responses = {"200": _json(_ref("Accepted"), "Every message's event is in Redis (a repeat counts as a duplicate)")}
    for status, reason in errors.items():
        responses[status] = _json(_ref("Error"), reason, headers=RETRY_AFTER if status in ("429", "503") else None)
    return {
        "post": {
            "summary": "Record messages as sent (queued) from the provider's send response: their timeline starts",
            # Not a parameter here: its absence would make a body without `provider` valid, and its presence
            # would not, which one schema per location cannot say.
            "description": "`?provider=` may stand in for the body's `provider` (it must agree with the body's), "
            "and `?recipients=` for the body's `recipients`.",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"anyOf": [*_sent_envelopes(), message, listing, wrapped]}}},
            },
            "responses": responses,
        }
    }


def _read_api() -> dict[str, Any]:
    """GET /api/v1/messages/... and /api/v1/events (webhooks/web/read_api.py): the database handler's tables."""
    from webhooks.events import Kind, Status

    from .read_api import CURSOR, DEFAULT_LIMIT, MAX_LIMIT

    cursor = {"type": "string", "pattern": f"^{CURSOR.pattern}$", "description": "an answer's `next`; omit to start"}
    errors = {
        "401": "The bearer token is missing or wrong (WWW-Authenticate: Bearer)",
        "404": "The API is off (API_TOKENS is not set), or no such message is stored",
        "409": "`database` is not in HANDLERS: there are no tables to read; the body says how to enable it",
        "429": CALLBACK_ERRORS["429"],
        "503": "The database cannot be read (down, or not migrated by `smshooks initdb`); retry later (Retry-After)",
    }

    def answers(ok: dict[str, Any], *extra: str) -> dict[str, Any]:
        out = {"200": ok}
        for status, reason in {**errors, **{s: "A bad query parameter; `fields` names it" for s in extra}}.items():
            out[status] = _json(_ref("Error"), reason, headers=RETRY_AFTER if status in ("429", "503") else None)
        return out

    def choice(name: str, values: Any, description: str) -> dict[str, Any]:
        schema = {"type": "string", "enum": ["", *(v.value for v in values)]}  # empty: any, as a form's "any"
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    text = {"type": "string"}
    feed = {
        "type": "object",
        "required": ["events", "next", "more"],
        "properties": {
            "events": {"type": "array", "items": _ref("StoredEvent")},
            "next": {**cursor, "description": "send it back as `after`; the same when nothing is new"},
            "more": {"type": "boolean", "description": "more events are waiting: ask again at once"},
        },
    }
    return {
        "/api/v1/messages/{provider}/{message_id}": {
            "get": {
                "summary": "A message's current status and every event of it, oldest first",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "provider", "in": "path", "required": True, "schema": text},
                    {"name": "message_id", "in": "path", "required": True, "schema": text},
                ],
                "responses": answers(_json(_ref("Message"), "The message")),
            }
        },
        "/api/v1/events": {
            "get": {
                "summary": "Events in the order they were stored, after a cursor: poll with `after=<next>`",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "provider", "in": "query", "required": False, "schema": text},
                    choice("kind", Kind, "only events of this kind"),
                    choice("status", Status, "only events with this status"),
                    {"name": "after", "in": "query", "required": False, "schema": cursor},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                    },
                ],
                "responses": answers(_json(feed, "Up to `limit` events after the cursor"), "400"),
            }
        },
    }


def _read_schemas() -> dict[str, Any]:
    """An event as stored (the wire form of webhooks.events.EventSchema) and a message with its events."""
    from webhooks.events import Kind, Status

    maybe = {"type": "string", "nullable": True}
    when = {"type": "string", "format": "date-time"}
    event = {
        "type": "object",
        "required": ["event_id", "provider", "kind", "status", "final", "message_id", "occurred_at", "received_at"],
        "properties": {
            "event_id": {"type": "string"},
            "provider": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in Kind]},
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "final": {"type": "boolean"},
            "message_id": {"type": "string"},
            **{name: maybe for name in ("recipient", "sender", "text", "provider_status", "description")},
            "occurred_at": when,
            "received_at": when,
            "raw": {"type": "object", "description": "the provider's fields as sent, secrets removed"},
        },
    }
    message = {
        "type": "object",
        "required": ["provider", "message_id", "status", "final", "events"],
        "description": "status fields are null for a message only events name (an email that could not be read)",
        "properties": {
            "provider": {"type": "string"},
            "message_id": {"type": "string"},
            "recipient": maybe,
            "status": {"type": "string", "nullable": True, "enum": [s.value for s in Status]},
            "final": {"type": "boolean", "nullable": True},
            "provider_status": maybe,
            "description": maybe,
            **{name: {**when, "nullable": True} for name in ("status_at", "updated_at", "overdue_since")},
            "events": {"type": "array", "items": _ref("StoredEvent")},
        },
    }
    return {"StoredEvent": event, "Message": message}


PATHS: dict[str, dict[str, Any]] = {
    "/redoxygen/receipt": callback(
        "Red Oxygen delivery receipt (ReceiptCallbackURL)",
        html=True,
        methods=("post", "get"),
        fields={
            "SMSId": _CODE,
            "DestTn": _CODE,
            "Result": _CODE,
            "ResultText": _TEXT,
            "Timestamp": {"type": "string", "format": "date-time"},
        },
        required=("SMSId", "Result"),
    ),
    "/redoxygen/reply": callback(
        "Red Oxygen reply from a phone (ReplyCallbackURL, HTTP Reply Service)",
        html=True,
        methods=("post", "get"),
        fields={
            "SmsId": _CODE,
            "DestTN": _CODE,
            "ReplyText": _TEXT,
            "EmailId": _CODE,
            "CustomerId": _KEPT,
            "DestName": _TEXT,
            "UserEmail": _KEPT,
            "UserName": _KEPT,
            "ReplyURL": _KEPT,
        },
        required=("SmsId", "DestTN", "ReplyText"),
    ),
    "/smsc/callback": callback(
        "SMSC handler: a delivery status, or an incoming SMS when `mes` is present (charset and fmt in the URL)",
        methods=("post", "get"),
        fields={
            "id": _CODE,
            "phone": _CODE,
            "status": _KEPT,  # a status call's (below); an incoming SMS's is not read
            "time": _CODE_OR_EMPTY,
            "ts": _CODE_OR_EMPTY,
            "err": _KEPT,
            "cnt": _KEPT,
            "type": _KEPT,
            "mes": {**_TEXT, "nullable": False},
            "to": _KEPT,
            "sent": _KEPT,
            "md5": {**_KEPT, "description": "md5, sha1 or crc32: required, and checked, when SMSC_PASSWORD is set"},
            "sha1": _KEPT,
            "crc32": _KEPT,
        },
        required=("id", "phone"),
        # A body declaring UTF-8 is read as UTF-8; SMSC's own, undeclared, are in the URL's charset
        # (windows-1251 unless `?charset=`), where a field's 64 characters are counted.
        charset="utf-8",
        shapes=(
            {"required": ["mes"], "properties": {"to": _CODE_OR_EMPTY, "sent": _CODE_OR_EMPTY}},
            {
                "required": ["status"],
                "properties": {"status": _CODE, "err": _CODE_OR_EMPTY},
                "not": {"required": ["mes"]},
            },
        ),
    ),
    "/ogangi/status": callback(
        "OGANGI message notification: one `<message>` object or many, with or without the response envelope",
        fields={
            "id": _CODE,
            "carrier": _KEPT,
            "from": _CODE_OR_EMPTY,
            "to": _CODE_OR_EMPTY,
            "text": _TEXT,
            "status": _CODE,
            "statusDescription": _TEXT,
            "encoding": _KEPT,
            "date": {"oneOf": [_DATE, {"type": "string", "maxLength": 0}]},
            "timezone": _KEPT,
            "clientId": _KEPT,
        },
        required=("id", "status"),
        # A receipt needs its status; a message a phone sent (a RECEIVED, INBOUND or MO status, or
        # one `to` a code in OGANGI_SHORTCODES) also its sender and text.
        shapes=(
            {"properties": {"status": {"not": _INBOUND}}},
            {"required": ["from", "text"], "properties": {"status": _INBOUND, "from": _CODE, "text": _TEXT}},
        ),
    ),
    "/digitaleo/ping": _ping(
        callback(
            "Digitaleo ping (section 2.11): a status changed or a reply arrived; the worker asks the API what",
            methods=("get", "post"),
            fields={
                "sms_id": {
                    "oneOf": [
                        {"type": "string", "pattern": "^[0-9]{1,20}$"},
                        {"type": "integer", "minimum": 0, "maximum": 10**20 - 1},
                    ]
                }
            },
            required=("sms_id",),
        )
    ),
    "/inbound/email": _email("A provider's email: the raw RFC 822 message, or an inbound-mail relay's form"),
    "/inbound/email/mime": _email("The same, at the URL Mailgun posts raw messages to (it must end in `mime`)"),
    "/api/v1/sent": _sent(),
    **_read_api(),
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format)",
            "security": [{"token": []}, {"basic": []}],
            "responses": {
                "200": {"description": "The metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **{
                    code: _json(_ref("Error"), CALLBACK_ERRORS[code], headers=RETRY_AFTER if code == "429" else None)
                    for code in ("401", "403", "429")
                },
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Redis reachable, inbox length, enabled handlers",
            "responses": {
                "200": _json(_ref("Health"), "Redis answers (status degraded: a handler in HANDLERS cannot run)"),
                "503": _json(_ref("Health"), "Redis cannot be reached"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {"description": "OpenAPI 3 document", "content": {JSON: {"schema": {"type": "object"}}}}
            },
        }
    },
}

COMPONENTS: dict[str, Any] = {
    "securitySchemes": {
        "token": {
            "type": "apiKey",
            "in": "query",
            "name": "token",
            "description": "WEBHOOK_SECRET (any one of them during a rotation)",
        },
        "basic": {"type": "http", "scheme": "basic", "description": "WEBHOOK_SECRET as the password"},
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "one of API_TOKENS (the API's, never WEBHOOK_SECRET)",
        },
    },
    "schemas": {
        "Accepted": {
            "type": "object",
            "required": ["accepted", "duplicates", "event_ids"],
            "properties": {
                "accepted": {"type": "integer", "description": "events stored now"},
                "duplicates": {"type": "integer", "description": "events already stored before"},
                "event_ids": {"type": "array", "items": {"type": "string"}},
                "result": {"type": "string", "description": "the provider's result code (Red Oxygen: 000)"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "what was wrong"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "each bad field, by the provider's name for it",
                },
                "status": {"type": "integer"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "redis"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
                "redis": {"type": "string"},
                "inbox": {"type": "integer"},
                "handlers": {"type": "array", "items": {"type": "string"}},
                # degraded: handlers that cannot run, name -> reason; callbacks are still accepted (200)
                "broken": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
}
COMPONENTS["schemas"].update(_read_schemas())


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.0 document."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "smshooks",
            "version": _version(),
            "description": "Receipt and reply callbacks from SMS providers. Every error is JSON "
            "(`Accept: application/json` on endpoints that answer HTML by default).",
        },
        "paths": PATHS,
        "components": COMPONENTS,
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smshooks")
    except PackageNotFoundError:
        return "unknown"
