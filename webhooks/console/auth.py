"""Who may see the console: sign-in against CONSOLE_PASSWORD / CONSOLE_USERS, signed session cookies, CSRF.

Sessions are Flask's signed cookie (SECRET_KEY), HttpOnly, SameSite=Lax, Secure when the
request came over HTTPS (behind a proxy: TRUSTED_PROXY_COUNT makes X-Forwarded-Proto count),
expiring CONSOLE_SESSION_HOURS after sign-in. Every POST (sign-in, sign-out, replay) carries
a CSRF token (Flask-WTF). Failed sign-ins count in the same per-address throttle as failed
callback authentications (web/access.py): past AUTH_FAIL_LIMIT a minute the answer is 429. With
AUTH_FAIL_LIMIT=0 (callbacks not throttled) sign-ins keep a floor of their own, SIGN_IN_FLOOR a minute.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from webhooks.web.access import client_address, count_failure, throttle_key, throttled

from . import bp

csrf = CSRFProtect()
OPEN_ENDPOINTS = frozenset({"console.login", "console.static"})
# Failed sign-ins a minute per address when AUTH_FAIL_LIMIT=0: that setting is for providers behind shared
# addresses, and turning their throttle off must not leave the console's passwords open to guessing.
SIGN_IN_FLOOR = 30


class _ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request itself is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def init_app(app: Flask) -> None:
    app.session_interface = _ConsoleSessions()
    csrf.init_app(app)


def signed_in() -> str | None:
    """The signed-in user's name, or None: unknown user, or signed in more than CONSOLE_SESSION_HOURS ago.

    Flask re-signs the cookie on every request, so its own max age counts from the last page (and the
    overview refreshes itself); the sign-in time it carries is what ends a session.
    """
    user, since = session.get("user"), session.get("since")
    config = current_app.config["CONSOLE"]
    if not isinstance(user, str) or user not in config.users or not isinstance(since, int):
        return None
    if time.time() - since > config.session_hours * 3600:
        session.clear()
        return None
    return user


def check_password(users: Mapping[str, str], name: str, password: str) -> bool:
    """Compared in constant time with every user, without stopping early (no timing says which name exists)."""
    found = False
    for user, expected in users.items():
        same_user = hmac.compare_digest(user.encode(), name.encode())
        same_password = hmac.compare_digest(expected.encode(), password.encode())
        found |= same_user and same_password
    return found


@bp.before_request
def _guard() -> Any:
    if request.method == "POST":
        csrf.protect()  # a missing or wrong token is a 400 (CSRFError), before anything changes
    if request.endpoint in OPEN_ENDPOINTS or signed_in():
        return None
    if request.method == "GET":
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    return Response("sign in first", status=401, mimetype="text/plain")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    status = 200
    if request.method == "POST":
        limit = current_app.config["SETTINGS"].auth_fail_limit or SIGN_IN_FLOOR
        name, password = request.form.get("username", ""), request.form.get("password", "")
        address = throttle_key(client_address(request))
        # Checked before the password: past the limit even the right one waits, or guessing would go on.
        if wait := throttled(address, limit):
            return render_template("console/login.html", error=_too_many(wait)), 429
        if check_password(current_app.config["CONSOLE"].users, name, password):
            session.clear()
            session.permanent = True  # expires CONSOLE_SESSION_HOURS after sign-in
            session["user"] = name
            session["since"] = int(time.time())
            return redirect(_safe_next(request.args.get("next")))
        if wait := count_failure(address, limit):
            error, status = _too_many(wait), 429
        else:
            error, status = "wrong user name or password", 401
    return render_template("console/login.html", error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("console.login"))


def _too_many(wait: int) -> str:
    return f"too many failed sign-ins from this address; try again in {wait} s"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an address elsewhere (an open redirect)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return url_for("console.overview")
