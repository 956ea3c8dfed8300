"""What the OpenAPI document's entries share: answers, errors, body types, provider codes, `callback(...)`."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
HTML = "text/html"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(schema: dict[str, Any], description: str, html: bool = False, headers: dict | None = None) -> dict:
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


def as_text(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as a form, XML or query string carries it: its string variants (any text if none)."""
    if "type" not in schema and "oneOf" not in schema:
        return schema  # not checked: any text, as any JSON value
    strings = [v for v in schema.get("oneOf", [schema]) if v.get("type") == "string"]
    if not strings:
        return {"type": "string"}
    return strings[0] if len(strings) == 1 else {"anyOf": strings}


def declared(media_type: str, charset: str | None) -> str:
    """`media_type` with `charset` (multipart parts are UTF-8 whatever the Content-Type says)."""
    return f"{media_type}; charset={charset}" if charset and media_type != "multipart/form-data" else media_type


def as_json(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    """A field's schema in a JSON body: an optional field may also be null (marshmallow's load_default=None)."""
    if required or "nullable" in schema or ("type" not in schema and "oneOf" not in schema):
        return schema
    return {**schema, "nullable": True}


def cases(alternatives: tuple[dict[str, Any], ...], convert: Any) -> dict[str, Any]:
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
    text_fields = {name: as_text(schema) for name, schema in fields.items()}
    json_fields = {name: as_json(schema, name in required) for name, schema in fields.items()}
    json_body = {"type": "object", "properties": json_fields, "required": list(required)}
    json_body.update(cases(shapes, as_json))
    text_body = {"type": "object", "properties": text_fields, "required": list(required)}
    text_body.update(cases(shapes, lambda schema, _: as_text(schema)))
    responses = {
        "200": answer(ref("Accepted"), "Every event is in Redis (a repeat is acknowledged as a duplicate)", html)
    }
    for status, reason in CALLBACK_ERRORS.items():
        retry = RETRY_AFTER if status in ("429", "503") else None
        responses[status] = answer(ref("Error"), reason, html, retry)
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
                    declared(t, charset): {"schema": json_body if t == JSON else text_body} for t in BODY_TYPES
                },
            }
        item[method] = operation
    return item


# A provider code or id (redoxygen.Code): a non-blank string or a whole number, at most 64 characters.
# "Non-blank" as Python's str.strip() sees it, which is not the regex `\S` (U+0085, U+001C-U+001F).
NON_BLANK = "[^\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
CODE = {
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NON_BLANK},
        {"type": "integer", "minimum": -(10**63 - 1), "maximum": 10**64 - 1},
    ]
}
TEXT = {"type": "string"}
KEPT = {"description": "kept in the event's `raw` as sent; not checked"}
# SMSC and OGANGI send an absent value as an empty field (a form's `x=`, XML's `<x/>`): read as missing.
CODE_OR_EMPTY = {"oneOf": [*CODE["oneOf"], {"type": "string", "maxLength": 0}]}
DATE = {"type": "string", "format": "date-time", "description": "ISO 8601 with its UTC offset"}


def any_case(word: str) -> str:
    """`word` as a case-insensitive regex (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)
