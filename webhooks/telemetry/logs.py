"""Log records without secrets: installed once per process, before anything logs."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping
from typing import Any

from webhooks.config import Settings

from .redaction import redact, secrets_from_env


def redact_logs(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Remove every configured secret from every log record this process makes.

    The secrets are WEBHOOK_SECRET's (all of them) and those Sentry reports are scrubbed of
    (`secrets_from_env`: API secrets, passwords in URLs, SLACK_WEBHOOK_URL, ...).

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
