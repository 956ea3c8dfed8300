"""The app factory, as in Flask's tutorial: read the environment, wire Redis, register routes."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask

from handlers.registry import check

from . import redis_store
from .access import trust_proxies
from .config import MAX_BODY_BYTES, Settings
from .observability import init_sentry, redact_logs
from .views import bp, json_errors


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the web app from the environment; `config` overrides environment variables (tests)."""
    settings = Settings.from_env({**os.environ, **(config or {})})
    check(settings.handlers)  # an unknown handler name stops start-up here, not in the worker hours later
    redact_logs(settings, {**os.environ, **(config or {})})
    init_sentry(settings, web=True, env={**os.environ, **(config or {})})

    app = Flask(__name__)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    logging.getLogger("webhooks").setLevel(settings.log_level)
    if not settings.webhook_secret:
        app.logger.warning("WEBHOOK_SECRET is not set: anyone who finds these URLs can post events")

    redis_store.init_app(app)
    trust_proxies(app, settings)
    app.register_blueprint(bp)
    json_errors(app)
    return app
