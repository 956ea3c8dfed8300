"""What every console page shares: the signed-in user in the template, and the database's reader."""

from __future__ import annotations

from typing import Any

from flask import render_template, session


def render(template: str, **context: Any) -> str:
    """A console page, with the signed-in user's name for the header."""
    return render_template(template, user=session.get("user"), **context)
