"""Errors to Sentry when SENTRY_DSN is set, and secrets and phone numbers kept out of reports and logs."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping
from typing import Any

from .config import Settings
from .redaction import scrub_value, secrets_from_env
from .security import redact


def init_sentry(settings: Settings, web: bool, env: Mapping[str, str] | None = None) -> bool:
    """Start the Sentry SDK for the web app (Flask) or a worker (RQ); False when no DSN is set.

    `env` is the environment the settings came from (os.environ unless create_app was given overrides).
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    if web:
        from sentry_sdk.integrations.flask import FlaskIntegration as Integration
    else:
        from sentry_sdk.integrations.rq import RqIntegration as Integration
    # Every secret in the environment, not only ours: a handler's SMTP password or API token too.
    env = os.environ if env is None else env
    secrets = secrets_from_env(env, settings.webhook_secrets)
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[Integration()],
        environment=env.get("SENTRY_ENVIRONMENT"),
        release=env.get("SENTRY_RELEASE") or env.get("SOURCE_VERSION"),
        send_default_pii=False,  # no IPs, cookies or headers such as Authorization
        before_send=lambda event, _hint: _scrubbed_event(event, secrets),
        before_breadcrumb=lambda crumb, _hint: scrub_value(crumb, secrets),
    )
    return True


def _scrubbed_event(event: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    """The event with webhooks.redaction's rules applied, and the RQ job id as a searchable tag."""
    job = (event.get("extra") or {}).get("rq-job")
    if isinstance(job, dict) and job.get("job_id"):
        event.setdefault("tags", {})["job_id"] = job["job_id"]
    return scrub_value(event, secrets)


def redact_logs(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Remove every configured secret from every log record this process makes.

    The secrets are WEBHOOK_SECRET's (all of them) and those Sentry reports are scrubbed of
    (redaction.secrets_from_env: API secrets, passwords in URLs, SLACK_WEBHOOK_URL, ...).

    A handler (often someone else's code) may put the secret in an exception message;
    RQ logs that traceback. Done in the record factory, so no handler or formatter,
    ours or a library's, ever sees the secret.
    """
    secrets = secrets_from_env(os.environ if env is None else env, settings.webhook_secrets)
    if not secrets:
        return
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "redacts", None) == secrets:
        return  # already installed (create_app runs once per gunicorn worker, and in tests often)

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if any(secret in message for secret in secrets):
            record.msg, record.args = redact(message, secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(text.rstrip("\n"), secrets)
        return record

    redacted_record.redacts = secrets  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted_record)
