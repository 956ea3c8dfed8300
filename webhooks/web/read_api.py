"""The read API: `GET /api/v1/messages/{provider}/{message_id}` and `GET /api/v1/events` (docs/console.md).

Both read the database handler's tables (handlers/db_read.py). Answers:
    404  API_TOKENS is unset; 401 / 429 a missing or wrong token (tokens.py); an unknown message
    400  a bad `after`, `limit`, `kind` or `status`, named in `fields`
    409  `database` is not in HANDLERS: there are no tables to read, and the body says how to enable it
    503  the database cannot be reached (Retry-After)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from handlers.db_read import Reader
from webhooks.events import Kind, Status

from . import tokens

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
NO_DATABASE = (
    "the read API and the console read the database handler's tables, and `database` is not in HANDLERS: "
    "add it (HANDLERS=database,...) with DATABASE_URL, run `smshooks initdb`, and events stored from then on are here"
)
CURSOR = re.compile(r"e(0|[1-9][0-9]{0,17})")  # web/openapi/api.py describes it with this pattern


class BadParameters(ValueError):
    """Query parameters that cannot be read; `fields` names each one."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("bad query parameters")
        self.fields = fields


class NoDatabase(LookupError):
    """The database handler is not enabled."""


def get_reader() -> Reader:
    """The process's reader (one engine and pool), made on first use; NoDatabase without the handler."""
    settings = current_app.config["SETTINGS"]
    if "database" not in settings.handlers:
        raise NoDatabase(NO_DATABASE)
    reader = current_app.extensions.get("smshooks.reader")
    if reader is None:
        reader = current_app.extensions["smshooks.reader"] = Reader(settings.database_url)
    return reader


def encode_cursor(event_id: int) -> str:
    """`next`: opaque to clients (the id of the last event sent, with a mark that it is ours)."""
    return f"e{event_id}"


def decode_cursor(cursor: str) -> int:
    """The id inside a cursor from encode_cursor; ValueError for anything else."""
    match = CURSOR.fullmatch(cursor)
    if match is None:
        raise ValueError("not a cursor this API gave")
    return int(match[1])


def event_filters(args: Any) -> dict[str, str | None]:
    """provider, kind, status from the query string; BadParameters for a kind or status that does not exist."""
    problems: dict[str, list[str]] = {}
    filters = {name: (args.get(name) or "").strip() or None for name in ("provider", "kind", "status")}
    for name, values in (("kind", Kind), ("status", Status)):
        value = filters[name]
        if value is not None and value not in {v.value for v in values}:
            problems[name] = [f"must be one of {', '.join(v.value for v in values)}, got {value!r}"]
    if problems:
        raise BadParameters(problems)
    return filters


def _feed_parameters() -> tuple[dict[str, str | None], int, int]:
    problems: dict[str, list[str]] = {}
    try:
        filters = event_filters(request.args)
    except BadParameters as err:
        problems.update(err.fields)
        filters = {}
    after = 0
    if (cursor := request.args.get("after")) is not None:
        try:
            after = decode_cursor(cursor)
        except ValueError as err:
            problems["after"] = [f"{err}: send back the `next` of an earlier answer, or leave it out to start"]
    limit = DEFAULT_LIMIT
    raw = request.args.get("limit")
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            problems["limit"] = [f"must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}"]
        else:
            limit = int(raw)
    if problems:
        raise BadParameters(problems)
    return filters, after, limit


def _error(
    status: int, message: str, fields: dict[str, list[str]] | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": message, "status": status}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _guarded(answer: Any) -> Response:
    """The token check, then `answer()`, with the database's absence or failure said plainly."""
    refusal = tokens.refuse(request, current_app.config["SETTINGS"])
    if refusal is not None:
        return _error(refusal.status, refusal.message, headers=refusal.headers)
    try:
        return answer(get_reader())
    except BadParameters as err:
        return _error(400, "bad query parameters", err.fields)
    except NoDatabase as err:
        return _error(409, str(err))
    except SQLAlchemyError as err:
        current_app.logger.warning("read API: the database cannot be read (%s)", type(err).__name__)
        return _error(
            503,
            "the database cannot be read right now (is it up, and migrated by `smshooks initdb`?)",
            headers={"Retry-After": "5"},
        )


def message(provider: str, message_id: str) -> Response:
    """GET /api/v1/messages/<provider>/<message_id>: the current status and every event, oldest first."""

    def answer(reader: Reader) -> Response:
        found = reader.message(provider, message_id)
        if found is None:
            return _error(404, f"no message {message_id!r} of provider {provider!r} is stored")
        return jsonify(found.as_json())

    return _guarded(answer)


def events() -> Response:
    """GET /api/v1/events: events in the order stored, after the cursor; `next` continues."""

    def answer(reader: Reader) -> Response:
        filters, after, limit = _feed_parameters()
        page = reader.feed(filters, after, limit)
        return jsonify(events=page.events, next=encode_cursor(page.ids[-1] if page.ids else after), more=page.more)

    return _guarded(answer)
