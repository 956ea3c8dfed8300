"""The console's Messages page (being built)."""

from __future__ import annotations

from typing import Any

from . import bp
from .pages import render


@bp.route("/messages")
def messages() -> Any:
    return render("console/placeholder.html", heading="Messages")
