"""The API's entries: POST /api/v1/sent (a send response) and the read API (/api/v1/messages, /api/v1/events)."""

from __future__ import annotations

from typing import Any

from webhooks.providers.send_responses import MAX_MESSAGES, PROVIDERS

from .shapes import CALLBACK_ERRORS, CODE, DATE, JSON, KEPT, RETRY_AFTER, answer, any_case, ref


def sent_envelopes() -> list[dict[str, Any]]:
    """`{"provider", "response"}`, one per provider: the send response as send_responses.py reads it."""
    phone_list = {"type": "array", "items": CODE, "minItems": 1, "maxItems": MAX_MESSAGES}
    phone_text = {"type": "string", "maxLength": 64, "pattern": "[^,; \\t]", "description": "phones, comma-separated"}
    phones = {"oneOf": [phone_list, phone_text]}
    nullable_code = {**CODE, "nullable": True}
    receipt = {  # a numbered message of Red Oxygen's response (redoxygen.ReceiptSchema)
        "type": "object",
        "required": ["SMSId", "Result"],
        "properties": {
            "SMSId": CODE,
            "DestTn": nullable_code,
            "Result": CODE,
            "ResultText": {"type": "string", "nullable": True},
            "Timestamp": {**DATE, "nullable": True},
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
    smsc_text = "^\\s*" + any_case("OK") + "\\s*-\\s*[0-9]+\\s*" + any_case("SMS") + "\\s*,\\s*" + any_case("ID")
    smsc_text += "\\s*-\\s*[A-Za-z0-9_.-]+\\s*$"
    smsc_answer = {
        "oneOf": [
            {
                "type": "object",
                "required": ["id"],
                "properties": {"id": CODE, "cnt": KEPT, "error_code": nullable_code},
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


def sent() -> dict[str, Any]:
    """POST /api/v1/sent (webhooks/web/sent.py): a provider's send response, or the plain form; bearer token."""
    provider = {"type": "string", "enum": list(PROVIDERS)}
    entry = {
        "type": "object",
        "required": ["message_id"],
        "properties": {
            "provider": {**provider, "description": "or the list's"},
            "message_id": CODE,
            "recipient": {**CODE, "nullable": True},
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
        "400": (
            "The body is not a send response or the plain form, or not in its declared charset; "
            "`fields` names every bad field"
        ),
        "401": "The bearer token is missing or wrong (WWW-Authenticate: Bearer)",
        "404": "The API is off: API_TOKENS is not set",
        "413": f"The body is over 1 MiB, or names more than {MAX_MESSAGES} messages",
        "415": "The body is not JSON",
        "429": CALLBACK_ERRORS["429"],
        "503": CALLBACK_ERRORS["503"],
    }
    responses = {"200": answer(ref("Accepted"), "Every message's event is in Redis (a repeat counts as a duplicate)")}
    for status, reason in errors.items():
        responses[status] = answer(ref("Error"), reason, headers=RETRY_AFTER if status in ("429", "503") else None)
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
                "content": {JSON: {"schema": {"anyOf": [*sent_envelopes(), message, listing, wrapped]}}},
            },
            "responses": responses,
        }
    }


def read_api() -> dict[str, Any]:
    """GET /api/v1/messages/... and /api/v1/events (webhooks/web/read_api.py): the database handler's tables."""
    from webhooks.events import Kind, Status
    from webhooks.web.read_api import CURSOR, DEFAULT_LIMIT, MAX_LIMIT

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
            out[status] = answer(ref("Error"), reason, headers=RETRY_AFTER if status in ("429", "503") else None)
        return out

    def choice(name: str, values: Any, description: str) -> dict[str, Any]:
        schema = {"type": "string", "enum": ["", *(v.value for v in values)]}  # empty: any, as a form's "any"
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    text = {"type": "string"}
    feed = {
        "type": "object",
        "required": ["events", "next", "more"],
        "properties": {
            "events": {"type": "array", "items": ref("StoredEvent")},
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
                "responses": answers(answer(ref("Message"), "The message")),
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
                "responses": answers(answer(feed, "Up to `limit` events after the cursor"), "400"),
            }
        },
    }


def read_schemas() -> dict[str, Any]:
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
            "events": {"type": "array", "items": ref("StoredEvent")},
        },
    }
    return {"StoredEvent": event, "Message": message}
