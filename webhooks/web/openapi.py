"""The OpenAPI 3 description of every endpoint, served at GET /openapi.json.

One dict per path in PATHS: a new endpoint adds its own entry (with `callback(...)` for a
provider callback, which brings the shared error answers and the secret) and nothing else.
"""

from __future__ import annotations

from typing import Any

from webhooks.providers.send_responses import MAX_MESSAGES, PROVIDERS, RESPONSES

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
    """A field's schema as a form, XML or query string carries it: its string variant."""
    for variant in schema.get("oneOf", [schema]):
        if variant.get("type") == "string":
            return variant
    return {"type": "string"}


def callback(
    summary: str,
    fields: dict[str, Any],
    html: bool = False,
    methods: tuple[str, ...] = ("post",),
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A provider callback's path item: its fields (body or query string), 200 and the shared errors.

    `html`: the provider reads an HTML `<RESULT>` body unless the client sends `Accept: application/json`.
    """
    text_fields = {name: _as_text(schema) for name, schema in fields.items()}
    # In JSON an optional field may also be null (marshmallow's load_default=None allows it).
    json_fields = {
        name: schema if name in required else {**schema, "nullable": True} for name, schema in fields.items()
    }
    json_body = {"type": "object", "properties": json_fields, "required": list(required)}
    text_body = {"type": "object", "properties": text_fields, "required": list(required)}
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
        if method == "get":
            operation["parameters"] = [
                {"name": name, "in": "query", "required": name in required, "schema": schema}
                for name, schema in text_fields.items()
            ]
        else:
            # Forms and XML carry only text: their fields are strings (a JSON body may also use numbers).
            # (The fields may also come in the query string instead; a POST without either is a 400.)
            operation["requestBody"] = {
                "required": True,
                "content": {t: {"schema": json_body if t == JSON else text_body} for t in BODY_TYPES},
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


def _email(summary: str) -> dict[str, Any]:
    relay = {
        "type": "object",
        "properties": {
            name: {"type": "string"}
            for name in (
                "body-mime",
                "email",
                "body-plain",
                "stripped-text",
                "body-html",
                "subject",
                "from",
                "sender",
                "recipient",
                "message-headers",
            )
        },
    }
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
    raw = {"schema": {"type": "string", "format": "binary"}}
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


def _sent() -> dict[str, Any]:
    """POST /api/v1/sent (webhooks/web/sent.py): a provider's send response, or the plain form; bearer token."""
    phones = {
        "oneOf": [{"type": "array", "items": _CODE}, {"type": "string", "description": "phones, comma-separated"}]
    }
    envelope = {
        "type": "object",
        "required": ["response"],
        "properties": {
            "provider": {"type": "string", "enum": sorted(RESPONSES), "description": "or ?provider="},
            "response": {"description": "what the provider answered to the send, as received (object, list or text)"},
            "recipients": {**phones, "description": "the phones sent to (SMSC's answer names none)"},
            "phones": {**phones, "description": "the same as recipients (SMSC's spelling)"},
        },
    }
    provider = {"type": "string", "enum": list(PROVIDERS), "description": "or the list's, or ?provider="}
    message = {
        "type": "object",
        "required": ["message_id"],
        "properties": {
            "provider": provider,
            "message_id": _CODE,
            "recipient": {**_CODE, "nullable": True},
            "sent_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    }
    listing = {"type": "array", "items": message, "minItems": 1, "maxItems": MAX_MESSAGES}
    wrapped = {
        "type": "object",
        "required": ["messages"],
        "properties": {"provider": provider, "messages": listing},
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
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "provider", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "recipients", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"anyOf": [envelope, message, listing, wrapped]}}},
            },
            "responses": responses,
        }
    }


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
            "status": _CODE,
            "time": _KEPT,
            "ts": _KEPT,
            "err": _KEPT,
            "cnt": _KEPT,
            "type": _KEPT,
            "mes": _TEXT,
            "to": _KEPT,
            "sent": _KEPT,
            "md5": _KEPT,
            "sha1": _KEPT,
            "crc32": _KEPT,
        },
        required=("id", "phone"),
    ),
    "/ogangi/status": callback(
        "OGANGI message notification: one `<message>` object or many, with or without the response envelope",
        fields={
            "id": _CODE,
            "carrier": _KEPT,
            "from": _CODE,
            "to": _CODE,
            "text": _TEXT,
            "status": _CODE,
            "statusDescription": _TEXT,
            "encoding": _KEPT,
            "date": _TEXT,
            "timezone": _KEPT,
            "clientId": _KEPT,
        },
        required=("id",),
    ),
    "/digitaleo/ping": _ping(
        callback(
            "Digitaleo ping (section 2.11): a status changed or a reply arrived; the worker asks the API what",
            methods=("get", "post"),
            fields={"sms_id": {"type": "string", "pattern": "^[0-9]+$"}},
            required=("sms_id",),
        )
    ),
    "/inbound/email": _email("A provider's email: the raw RFC 822 message, or an inbound-mail relay's form"),
    "/inbound/email/mime": _email("The same, at the URL Mailgun posts raw messages to (it must end in `mime`)"),
    "/api/v1/sent": _sent(),
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
