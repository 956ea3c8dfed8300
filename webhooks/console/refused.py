"""The console's Refused callbacks page (being built)."""

from __future__ import annotations

from typing import Any

from . import bp
from .pages import render


@bp.route("/refused")
def refused() -> Any:
    return render("console/placeholder.html", heading="Refused callbacks")
