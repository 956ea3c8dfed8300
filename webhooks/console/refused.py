"""The console's Refused callbacks page: the last requests answered 400/401/403/413/415/429, newest first."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from redis.exceptions import RedisError

from webhooks.redis_connection import describe
from webhooks.telemetry import refusals
from webhooks.web.redis_store import get_redis

from . import bp
from .pages import render


@bp.route("/refused")
def refused() -> Any:
    try:
        entries = refusals.latest(get_redis())
    except RedisError as err:
        return render("console/refused.html", entries=[], problem=f"Redis cannot be reached ({describe(err)})")
    for entry in entries:
        entry["when"] = datetime.fromtimestamp(entry.get("at", 0), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return render("console/refused.html", entries=entries, problem=None, cap=refusals.CAP)
