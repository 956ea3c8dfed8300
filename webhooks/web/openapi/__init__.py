"""The OpenAPI 3 description of every endpoint, served at GET /openapi.json.

One dict per path in PATHS: a new endpoint adds its own entry (with `callback(...)` from
shapes.py for a provider callback, which brings the shared error answers and the secret) and
nothing else. providers.py holds the shapes particular to a provider or the email endpoints,
api.py the API's entries.
"""

from __future__ import annotations

from typing import Any

from .api import read_api, read_schemas, sent
from .providers import INBOUND, email_upload, ping
from .shapes import (
    CALLBACK_ERRORS,
    CODE,
    CODE_OR_EMPTY,
    DATE,
    JSON,
    KEPT,
    RETRY_AFTER,
    TEXT,
    answer,
    callback,
    ref,
)

PATHS: dict[str, dict[str, Any]] = {
    "/redoxygen/receipt": callback(
        "Red Oxygen delivery receipt (ReceiptCallbackURL)",
        html=True,
        methods=("post", "get"),
        fields={
            "SMSId": CODE,
            "DestTn": CODE,
            "Result": CODE,
            "ResultText": TEXT,
            "Timestamp": {"type": "string", "format": "date-time"},
        },
        required=("SMSId", "Result"),
    ),
    "/redoxygen/reply": callback(
        "Red Oxygen reply from a phone (ReplyCallbackURL, HTTP Reply Service)",
        html=True,
        methods=("post", "get"),
        fields={
            "SmsId": CODE,
            "DestTN": CODE,
            "ReplyText": TEXT,
            "EmailId": CODE,
            "CustomerId": KEPT,
            "DestName": TEXT,
            "UserEmail": KEPT,
            "UserName": KEPT,
            "ReplyURL": KEPT,
        },
        required=("SmsId", "DestTN", "ReplyText"),
    ),
    "/smsc/callback": callback(
        "SMSC handler: a delivery status, or an incoming SMS when `mes` is present (charset and fmt in the URL)",
        methods=("post", "get"),
        fields={
            "id": CODE,
            "phone": CODE,
            "status": KEPT,  # a status call's (below); an incoming SMS's is not read
            "time": CODE_OR_EMPTY,
            "ts": CODE_OR_EMPTY,
            "err": KEPT,
            "cnt": KEPT,
            "type": KEPT,
            "mes": {**TEXT, "nullable": False},
            "to": KEPT,
            "sent": KEPT,
            "md5": {**KEPT, "description": "md5, sha1 or crc32: required, and checked, when SMSC_PASSWORD is set"},
            "sha1": KEPT,
            "crc32": KEPT,
        },
        required=("id", "phone"),
        # A body declaring UTF-8 is read as UTF-8; SMSC's own, undeclared, are in the URL's charset
        # (windows-1251 unless `?charset=`), where a field's 64 characters are counted.
        charset="utf-8",
        shapes=(
            {"required": ["mes"], "properties": {"to": CODE_OR_EMPTY, "sent": CODE_OR_EMPTY}},
            {
                "required": ["status"],
                "properties": {"status": CODE, "err": CODE_OR_EMPTY},
                "not": {"required": ["mes"]},
            },
        ),
    ),
    "/ogangi/status": callback(
        "OGANGI message notification: one `<message>` object or many, with or without the response envelope",
        fields={
            "id": CODE,
            "carrier": KEPT,
            "from": CODE_OR_EMPTY,
            "to": CODE_OR_EMPTY,
            "text": TEXT,
            "status": CODE,
            "statusDescription": TEXT,
            "encoding": KEPT,
            "date": {"oneOf": [DATE, {"type": "string", "maxLength": 0}]},
            "timezone": KEPT,
            "clientId": KEPT,
        },
        required=("id", "status"),
        # A receipt needs its status; a message a phone sent (a RECEIVED, INBOUND or MO status, or
        # one `to` a code in OGANGI_SHORTCODES) also its sender and text.
        shapes=(
            {"properties": {"status": {"not": INBOUND}}},
            {"required": ["from", "text"], "properties": {"status": INBOUND, "from": CODE, "text": TEXT}},
        ),
    ),
    "/digitaleo/ping": ping(
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
    "/inbound/email": email_upload("A provider's email: the raw RFC 822 message, or an inbound-mail relay's form"),
    "/inbound/email/mime": email_upload("The same, at the URL Mailgun posts raw messages to (it must end in `mime`)"),
    "/api/v1/sent": sent(),
    **read_api(),
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format)",
            "security": [{"token": []}, {"basic": []}],
            "responses": {
                "200": {"description": "The metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **{
                    code: answer(ref("Error"), CALLBACK_ERRORS[code], headers=RETRY_AFTER if code == "429" else None)
                    for code in ("401", "403", "429")
                },
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Redis reachable, inbox length, enabled handlers",
            "responses": {
                "200": answer(ref("Health"), "Redis answers (status degraded: a handler in HANDLERS cannot run)"),
                "503": answer(ref("Health"), "Redis cannot be reached"),
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
COMPONENTS["schemas"].update(read_schemas())


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
