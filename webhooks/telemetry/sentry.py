"""Errors to Sentry when SENTRY_DSN is set, with secrets and phone numbers kept out of every report."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from webhooks.config import Settings

from .redaction import scrub_value, secrets_from_env

if TYPE_CHECKING:
    from sentry_sdk.integrations import Integration
    from sentry_sdk.types import Event


def init_sentry(settings: Settings, web: bool, env: Mapping[str, str] | None = None) -> bool:
    """Start the Sentry SDK for the web app (Flask) or a worker (RQ); False when no DSN is set.

    `env` is the environment the settings came from (os.environ unless create_app was given overrides).
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    integration: type[Integration]
    if web:
        from sentry_sdk.integrations.flask import FlaskIntegration

        integration = FlaskIntegration
    else:
        from sentry_sdk.integrations.rq import RqIntegration

        integration = RqIntegration
    # Every secret in the environment, not only ours: a handler's SMTP password or API token too.
    env = os.environ if env is None else env
    secrets = secrets_from_env(env, settings.webhook_secrets)
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[integration()],
        environment=env.get("SENTRY_ENVIRONMENT"),
        release=env.get("SENTRY_RELEASE") or env.get("SOURCE_VERSION"),
        send_default_pii=False,  # no IPs, cookies or headers such as Authorization
        before_send=lambda event, hint: None if _already_reported(hint) else _scrubbed_event(event, secrets),
        before_breadcrumb=lambda crumb, _hint: scrub_value(crumb, secrets),
    )
    return True


def _already_reported(hint: Mapping[str, object]) -> bool:
    """An exception that says it was reported before (pipeline/gone.py's StillGone) is not sent again."""
    exc_info = hint.get("exc_info")
    return isinstance(exc_info, tuple) and len(exc_info) > 1 and getattr(exc_info[1], "already_reported", False)


def _scrubbed_event(event: Event, secrets: tuple[str, ...]) -> Event:
    """The event with telemetry/redaction.py's rules applied, and the RQ job id as a searchable tag."""
    job = (event.get("extra") or {}).get("rq-job")
    if isinstance(job, dict) and job.get("job_id"):
        event.setdefault("tags", {})["job_id"] = job["job_id"]
    return scrub_value(event, secrets)
