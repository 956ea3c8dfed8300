"""The console's Failures page (being built)."""

from __future__ import annotations

from typing import Any

from . import bp
from .pages import render


@bp.route("/failures")
def failures() -> Any:
    return render("console/placeholder.html", heading="Failures")
