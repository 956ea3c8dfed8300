"""Errors to Sentry when SENTRY_DSN is set, with the shared secret scrubbed from every report."""

from __future__ import annotations

import os
from typing import Any

from .config import Settings


def _scrubber(secret: str | None):  # type: ignore[no-untyped-def]
    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(secret, "[secret]") if secret else value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
        return scrub(event)

    return before_send


def init_sentry(settings: Settings, web: bool) -> bool:
    """Start the Sentry SDK for the web app (Flask) or a worker (RQ); False when no DSN is set."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    if web:
        from sentry_sdk.integrations.flask import FlaskIntegration as Integration
    else:
        from sentry_sdk.integrations.rq import RqIntegration as Integration
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[Integration()],
        environment=os.environ.get("SENTRY_ENVIRONMENT"),
        release=os.environ.get("SENTRY_RELEASE") or os.environ.get("SOURCE_VERSION"),
        send_default_pii=False,  # no IPs, cookies or headers such as Authorization
        before_send=_scrubber(settings.webhook_secret),
    )
    return True
