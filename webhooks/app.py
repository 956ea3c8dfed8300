"""The app factory, as in Flask's tutorial: read the environment, wire Redis, register routes."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask

from handlers.registry import problems
from webhooks.config import MAX_BODY_BYTES, Settings
from webhooks.console import init_console
from webhooks.console.config import ConsoleConfig
from webhooks.console.messages import event_policies
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.providers.status_maps import read_status_maps
from webhooks.routes import bp, json_errors
from webhooks.telemetry.logs import redact_logs, warn_once
from webhooks.telemetry.redaction import scrub_text, secrets_from_env
from webhooks.telemetry.sentry import init_sentry
from webhooks.web import redis_store
from webhooks.web.access import trust_proxies


def handler_problems(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Why each HANDLERS name cannot run (unknown, or broken on import or on build), scrubbed of secrets.

    The web needs no handler to accept callbacks, so a broken one does not stop it: it is
    named in /healthz (degraded) and warned about once; the release step is what refuses it.
    """
    secrets = secrets_from_env(env, settings.webhook_secrets)
    # The reasons are exception messages from someone else's code: they may carry a URL's password.
    return {name: scrub_text(reason, secrets) for name, reason in problems(settings.handlers, env).items()}


def startup_warnings(settings: Settings, broken: Mapping[str, str] | None = None) -> list[str]:
    """What the web process warns about at start-up, once per process group (telemetry/logs.py's warn_once)."""
    warnings = []
    if not settings.webhook_secret:
        warnings.append("WEBHOOK_SECRET is not set: anyone who finds these URLs can post events")
    for reason in (broken or {}).values():
        warnings.append(f"{reason}; callbacks are still accepted and stored, /healthz says degraded")
    return warnings


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the web app from the environment; `config` overrides environment variables (tests)."""
    env = {**os.environ, **(config or {})}
    settings = Settings.from_env(env)
    redact_logs(settings, env)
    init_sentry(settings, web=True, env=env)
    broken = handler_problems(settings, env)  # once per process, never per request

    app = Flask(__name__)
    app.config.update(
        SETTINGS=settings,
        DIGITALEO=DigitaleoConfig.from_env(env),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        STATUS_MAPS=read_status_maps(env),  # <PROVIDER>_STATUS_MAP; a bad one stops start-up here
        BROKEN_HANDLERS=broken,  # name -> reason, for /healthz
        SECRETS=secrets_from_env(env, settings.webhook_secrets),  # scrubbed from every stored event and answer
        EVENT_POLICIES=event_policies(settings, env),  # <NAME>_EVENTS, for the console's "which handlers got it"
    )
    logging.getLogger("webhooks").setLevel(settings.log_level)
    for message in startup_warnings(settings, broken):
        warn_once(app.logger, message)  # gunicorn's master has said them already (gunicorn_conf.on_starting)

    console = ConsoleConfig.from_env(env, settings.webhook_secrets)  # no SECRET_KEY with a password: refused here
    redis_store.init_app(app)
    trust_proxies(app, settings)
    app.register_blueprint(bp)
    init_console(app, console)  # /console, when CONSOLE_PASSWORD or CONSOLE_USERS is set
    json_errors(app)
    return app
