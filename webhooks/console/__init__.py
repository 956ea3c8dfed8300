"""The operator's console at /console: server-rendered pages over the database handler's tables and Redis.

Off unless CONSOLE_PASSWORD (or CONSOLE_USERS) is set; then SECRET_KEY must be too (console/config.py).
Every page needs a signed-in user (auth.py); every POST carries a CSRF token. The pages:
overview.py, messages.py (search, a message's timeline), events.py, refused.py, failures.py.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Flask, Response, jsonify

from .config import ConsoleConfig

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")

OFF = "the console is off: set CONSOLE_PASSWORD (or CONSOLE_USERS) and SECRET_KEY (docs/console.md)"


def init_console(app: Flask, config: ConsoleConfig) -> None:
    """Register the console's pages when it is configured; otherwise /console answers 404 saying how."""
    app.config["CONSOLE"] = config
    if not config.enabled:
        app.add_url_rule("/console", "console_off", _off)
        app.add_url_rule("/console/", "console_off", _off, strict_slashes=True)  # the overview's own address
        app.add_url_rule("/console/<path:_rest>", "console_off", _off)
        return
    from . import auth, events, failures, messages, overview, refused  # noqa: F401 (their routes join bp)

    app.config.update(
        SECRET_KEY=config.secret_key,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.session_hours),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="smshooks_console",
        SESSION_COOKIE_PATH="/console",
        WTF_CSRF_CHECK_DEFAULT=False,  # provider callbacks are POSTs too: only the console's are checked
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    auth.init_app(app)
    app.register_blueprint(bp)


def _off(_rest: str = "") -> Response:
    response = jsonify(error=OFF, status=404)
    response.status_code = 404
    return response
