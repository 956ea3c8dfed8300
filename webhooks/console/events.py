"""The console's Events page: the latest events, filtered by provider, kind and status, newest first by cursor."""

from __future__ import annotations

from typing import Any

from flask import abort, request
from sqlalchemy.exc import SQLAlchemyError

from webhooks.events import Kind, Status
from webhooks.providers.send_responses import PROVIDERS
from webhooks.web.read_api import BadParameters, NoDatabase, event_filters, get_reader

from . import bp
from .pages import render

PER_PAGE = 50
# The providers that store events: the callbacks' and the send responses'.
KNOWN_PROVIDERS = tuple(sorted({"redoxygen", "smsc", "ogangi", "digitaleo", "email", *PROVIDERS}))


@bp.route("/events")
def events() -> Any:
    try:
        filters = event_filters(request.args)
    except BadParameters as err:
        abort(400, "; ".join(f"{k}: {', '.join(v)}" for k, v in err.fields.items()))
    raw_before = request.args.get("before", "")
    if raw_before and not (raw_before.isascii() and raw_before.isdigit() and len(raw_before) < 19):
        abort(400, f"before: must be an event's id from an `older` link, got {raw_before!r}")
    before = int(raw_before) if raw_before else None
    shown = {name: value for name, value in filters.items() if value}
    choices = [
        ("provider", list(KNOWN_PROVIDERS)),
        ("kind", [k.value for k in Kind]),
        ("status", [s.value for s in Status]),
    ]
    context: dict[str, Any] = {"filters": shown, "choices": choices, "before": before, "older": None, "problem": None}
    try:
        page = get_reader().latest(filters, before, PER_PAGE)
    except NoDatabase as err:
        return render("console/events.html", page=None, **{**context, "problem": str(err)})
    except SQLAlchemyError:
        problem = "The database cannot be read right now (is it up, and migrated by `smshooks initdb`?)."
        return render("console/events.html", page=None, **{**context, "problem": problem}), 503
    context["older"] = page.ids[-1] if page.more else None
    return render("console/events.html", page=page, **context)
