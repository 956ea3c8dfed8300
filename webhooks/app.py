"""The app factory, as in Flask's tutorial: read the environment, wire Redis, register routes."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask

from handlers.registry import check
from webhooks.config import MAX_BODY_BYTES, Settings
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.routes import bp, json_errors
from webhooks.telemetry.logs import redact_logs, warn_once
from webhooks.telemetry.sentry import init_sentry
from webhooks.web import redis_store
from webhooks.web.access import trust_proxies


def startup_warnings(settings: Settings) -> list[str]:
    """What the web process warns about at start-up, once per process group (telemetry/logs.py's warn_once)."""
    warnings = []
    if not settings.webhook_secret:
        warnings.append("WEBHOOK_SECRET is not set: anyone who finds these URLs can post events")
    return warnings


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the web app from the environment; `config` overrides environment variables (tests)."""
    env = {**os.environ, **(config or {})}
    settings = Settings.from_env(env)
    check(settings.handlers)  # an unknown handler name stops start-up here, not in the worker hours later
    redact_logs(settings, env)
    init_sentry(settings, web=True, env=env)

    app = Flask(__name__)
    app.config.update(SETTINGS=settings, DIGITALEO=DigitaleoConfig.from_env(env), MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    logging.getLogger("webhooks").setLevel(settings.log_level)
    for message in startup_warnings(settings):
        warn_once(app.logger, message)  # gunicorn's master has said them already (gunicorn_conf.on_starting)

    redis_store.init_app(app)
    trust_proxies(app, settings)
    app.register_blueprint(bp)
    json_errors(app)
    return app
