"""Turning a callback's bytes into plain data: JSON, form, XML or query string. Pure: no Redis here."""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data

from webhooks.config import MAX_BODY_BYTES
from webhooks.providers import ParseError

# Fields that authenticate the caller; they never reach events, logs or error bodies.
SECRET_FIELDS = frozenset({"token"})


class BadPayload(ParseError):
    """The body cannot be read as what it claims to be (400, or 415 for a format we lack)."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400) -> None:
        super().__init__(errors)
        self.status = status


def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or 413 when it is over `limit`.

    Werkzeug cuts a chunked body at MAX_CONTENT_LENGTH without an error (and may see its
    length as 0), so whenever the server frames the body itself (`wsgi.input_terminated`,
    as gunicorn does) it is read here from the server's stream, one byte past the limit.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge()
    stream = request.environ.get("wsgi.input")
    if stream is None or not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=True)  # the server frames nothing: trust Content-Length
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    return b"".join(chunks)


# Python codecs that are not charsets a sender could mean: they turn escapes or IDNA into text.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})


def _c1_controls(err: UnicodeError) -> tuple[str, int]:
    """Bytes 0x80-0x9F a Windows code page leaves undefined read as the C1 controls of the same number.

    That is how browsers read them (WHATWG's windows-125x): SMSC's default windows-1251 has no
    character for 0x98, and one such byte must not lose the whole callback.
    """
    if not isinstance(err, UnicodeDecodeError):
        raise err
    bad = err.object[err.start : err.end]
    if not all(0x80 <= byte <= 0x9F for byte in bad):
        raise err
    return "".join(map(chr, bad)), err.end


codecs.register_error("smshooks-c1", _c1_controls)


def _errors(charset: str | None) -> str:
    """The decoding error handler for `charset`: Windows code pages read as browsers read them, others strict."""
    try:
        windows = codecs.lookup(charset or "utf-8").name.startswith("cp125")
    except LookupError:
        windows = False
    return "smshooks-c1" if windows else "strict"


def declared_charset(request: Request) -> str | None:
    """The charset the Content-Type declares, or None."""
    return (request.mimetype_params.get("charset") or "").strip() or None


def check_charset(charset: str) -> None:
    """BadPayload (400) naming `charset` when Python has no text codec of that name."""
    try:
        known = codecs.lookup(charset).name not in _NOT_CHARSETS
        b"x".decode(charset, "replace")  # LookupError for codecs that are not text encodings (rot13, base64)
    except LookupError:
        known = False
    if not known:
        raise BadPayload({"_body": [f"unknown charset {charset!r}: send UTF-8, or name a charset such as ISO-8859-1"]})


def _decode_text(body: bytes, charset: str | None) -> str:
    """Decode by the declared charset; undeclared bodies are UTF-8, or Latin-1 when they are not."""
    if charset:
        check_charset(charset)
        try:
            return body.decode(charset, _errors(charset))
        except UnicodeDecodeError as exc:
            raise BadPayload({"_body": [f"body is not valid {charset}: {exc.reason} at byte {exc.start}"]}) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


# Provider payloads nest 3 or 4 levels. Anything much deeper is refused here: json.loads and
# the XML parser manage far more, but every recursive walk after them (scrubbing, parsing) overflows.
MAX_DEPTH = 32


def parse_json(body: bytes | str) -> Any:
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadPayload({"_body": ["JSON is nested too deeply"]}) from None
    except ValueError as exc:  # includes invalid UTF-8 and integers over Python's digit limit
        raise BadPayload({"_body": [f"body is not valid JSON: {exc}"]}) from None
    if _depth_over(data, _json_children):
        raise BadPayload({"_body": [f"JSON is nested more than {MAX_DEPTH} levels deep"]})
    return data


def read_json(body: bytes, charset: str | None) -> Any:
    """JSON read in `charset` when one is declared (a 400 naming it, unknown or not its bytes); else as UTF-8."""
    if not charset:
        return parse_json(body)
    return parse_json(_decode_text(body, charset).removeprefix("\ufeff"))  # json.loads refuses a BOM in text


def _json_children(value: Any) -> Iterable[Any] | None:
    if isinstance(value, dict):
        return value.values()
    return value if isinstance(value, list) else None


def _depth_over(root: Any, children: Callable[[Any], Iterable[Any] | None]) -> bool:
    """True when `root` nests deeper than MAX_DEPTH; iterative, so it cannot overflow itself.

    `children(node)` gives a node's children, or None for a leaf.
    """
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        below = children(node)
        if below is not None:
            if depth > MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in below)
    return False


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """The root element's children as a dict (repeated names become lists); defusedxml refuses DTDs and entities."""
    try:
        root = SafeET.fromstring(body)
    except DefusedXmlException as exc:
        raise BadPayload({"_body": [f"XML refused: {type(exc).__name__}"]}) from None
    except (SafeET.ParseError, ValueError) as exc:
        raise BadPayload({"_body": [f"body is not valid XML: {exc}"]}) from None
    if _depth_over(root, list):  # an element's children; _element below recurses
        raise BadPayload({"_body": [f"XML is nested more than {MAX_DEPTH} levels deep"]})
    value = _element(root)
    return value if isinstance(value, dict) else {_local(root.tag): value}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop an XML namespace


def _element(element: Any) -> Any:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    result: dict[str, Any] = {}
    for child in children:
        key, value = _local(child.tag), _element(child)
        if key in result:
            existing = result[key]
            result[key] = existing + [value] if isinstance(existing, list) else [existing, value]
        else:
            result[key] = value
    return result


def parse_form(body: bytes, request: Request, charset: str | None = None) -> dict[str, str]:
    if request.mimetype == "multipart/form-data":
        environ = dict(request.environ, **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        _, form, _ = parse_form_data(environ, max_content_length=MAX_BODY_BYTES)
        return dict(form.items())
    charset = charset or declared_charset(request)
    text = _decode_text(body, charset)  # raw bytes; percent-escapes are decoded below with the same charset
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset or "utf-8", errors=_errors(charset))
    except (UnicodeDecodeError, LookupError) as exc:
        raise BadPayload({"_body": [f"form field is not valid {charset or 'utf-8'}: {exc}"]}) from None
    return dict(pairs)


def sniff(body: bytes) -> str | None:
    head = body.lstrip()[:1]
    return {b"{": "json", b"[": "json", b"<": "xml"}.get(head, "form" if b"=" in body else None)


_BY_MIMETYPE = {
    "application/json": "json",
    "text/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/x-www-form-urlencoded": "form",
    "multipart/form-data": "form",
}


def query_fields(request: Request, charset: str) -> dict[str, str]:
    """The query string read with `charset` (`request.args` reads UTF-8); a repeated name keeps its last value."""
    try:
        pairs = parse_qsl(
            request.query_string.decode("latin-1"), keep_blank_values=True, encoding=charset, errors=_errors(charset)
        )
    except UnicodeDecodeError as exc:
        raise BadPayload({"_query": [f"query string is not valid {charset}: {exc}"]}) from None
    return dict(pairs)


def decode(request: Request, body: bytes, charset: str | None = None) -> dict[str, Any]:
    """Query-string fields overlaid with the body's fields, secret fields removed.

    The format comes from Content-Type; a missing or generic one (text/plain,
    application/octet-stream) is sniffed from the first byte. The body, whatever its
    format (JSON, XML, form), is read in the charset its Content-Type declares; an
    unknown charset, or bytes not valid in it, is a 400 naming the charset. Undeclared,
    JSON is UTF-8, XML follows its own declaration, a form is UTF-8 (else Latin-1), and
    the query string is read as Werkzeug reads it (UTF-8).

    `charset` is one a provider names elsewhere (SMSC, in the callback URL): it reads the
    query string, and the body when the Content-Type declares none.
    """
    declared = declared_charset(request)
    for name in (declared, charset):
        if name:
            check_charset(name)  # an unknown charset is refused before anything is read
    args = query_fields(request, charset) if charset else request.args
    fields: dict[str, Any] = {k: v for k, v in args.items() if k not in SECRET_FIELDS}
    if not body.strip():
        return fields
    mimetype = request.mimetype
    kind = _BY_MIMETYPE.get(mimetype)
    if kind is None and mimetype.endswith("+json"):
        kind = "json"
    elif kind is None and mimetype.endswith("+xml"):
        kind = "xml"
    if kind is None and mimetype in ("", "text/plain", "application/octet-stream", "text/html"):
        kind = sniff(body)
    if kind is None:
        raise BadPayload(
            {"_body": [f"cannot read a {mimetype or 'body without a Content-Type'}: send JSON, XML or a form"]},
            status=415,
        )
    body_charset = declared or charset
    if kind == "json":
        data = read_json(body, body_charset)
        if not isinstance(data, (dict, list)):
            raise BadPayload({"_body": [f"JSON body must be an object or a list, got {type(data).__name__}"]})
        if isinstance(data, list):
            return {**fields, "Messages": data}
    elif kind == "xml":
        # From text, expat ignores the encoding declaration: the Content-Type's charset wins.
        data = parse_xml(_decode_text(body, body_charset) if body_charset else body)
    else:
        data = parse_form(body, request, body_charset)
    fields.update({k: v for k, v in data.items() if k not in SECRET_FIELDS})
    return fields
