"""Errors to Sentry when SENTRY_DSN is set, and the shared secret kept out of reports and logs."""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

from .config import Settings
from .security import scrub


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
        before_send=lambda event, _hint: scrub(scrub(event, settings.webhook_secret),
                                               settings.digitaleo.client_secret),
    )
    return True


def redact_logs(secret: str | None) -> None:
    """Remove the secret from every log record this process makes, tracebacks included.

    A handler (often someone else's code) may put the secret in an exception message;
    RQ logs that traceback. Done in the record factory, so no handler or formatter,
    ours or a library's, ever sees the secret.
    """
    if not secret:
        return
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "redacts", None) == secret:
        return  # already installed (create_app runs once per gunicorn worker, and in tests often)

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if secret in message:
            record.msg, record.args = message.replace(secret, "[secret]"), None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = text.rstrip("\n").replace(secret, "[secret]")
        return record

    redacted_record.redacts = secret  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted_record)
