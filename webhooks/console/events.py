"""The console's Events page (being built)."""

from __future__ import annotations

from typing import Any

from . import bp
from .pages import render


@bp.route("/events")
def events() -> Any:
    return render("console/placeholder.html", heading="Events")
