"""The console's Overview page (being built)."""

from __future__ import annotations

from typing import Any

from . import bp
from .pages import render


@bp.route("/")
def overview() -> Any:
    return render("console/placeholder.html", heading="Overview")
