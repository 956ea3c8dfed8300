"""The process's log: one line per record, secrets out; installed once per process, before anything logs.

- `configure_logging`: one handler on the root logger (standard error), every record one line,
  `LOG_FORMAT=text` (a traceback folded into its record, newlines escaped as `\\n`) or `json`
  (one object a line: time, level, logger, message, exc). RQ's own lines (six a job) only at
  `LOG_LEVEL=DEBUG`; the one line a handler batch gets is `metrics.counted_handler_job`'s.
- `redact_logs`: the secrets out of every record, before any handler or formatter sees it.
- `warn_once`: a start-up warning once per process group (gunicorn's master says it, its
  workers do not repeat it).

A platform's log router (Heroku's Logplex, ...) splits what it reads into lines and drops lines
when flooded: a record spread over lines arrives in pieces, interleaved with others, or not at all.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from webhooks.config import ConfigError, Settings

from .redaction import redact, secrets_from_env

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Handler jobs as RQ names them (webhooks/jobs.py is the alias of earlier releases). When one raises,
# RQ logs the traceback and counted_handler_job logs its batch line with the same traceback: one is enough.
HANDLER_JOBS = frozenset({"webhooks.pipeline.jobs.handle", "webhooks.jobs.handle"})


def log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL, checked: DEBUG, INFO (the default), WARNING, ERROR or CRITICAL."""
    level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if level not in LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, got {env.get('LOG_LEVEL')!r}")
    return level


def log_format(env: Mapping[str, str]) -> str:
    """LOG_FORMAT, checked: `text` (the default) or `json`."""
    kind = (env.get("LOG_FORMAT") or "text").strip().lower()
    if kind not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be 'text' or 'json', got {env.get('LOG_FORMAT')!r}")
    return kind


def rq_level(level: str) -> str:
    """The level of RQ's loggers: its per-job lines (INFO) only when LOG_LEVEL is DEBUG."""
    return "DEBUG" if level.upper() == "DEBUG" else "WARNING"


def one_line(text: str) -> str:
    """`text` on one line: line breaks written as `\\n` (and `\\r`), so a reader can unfold them."""
    return text.replace("\r\n", "\n").replace("\r", "\\r").replace("\n", "\\n")


class OneLineFormatter(logging.Formatter):
    """The usual text line, with the traceback (and any line break in the message) folded into it."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # redact_logs has already put the redacted traceback here
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)  # a line break in a string is written \n


def formatter(kind: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT `kind`."""
    return JsonFormatter() if kind == "json" else OneLineFormatter(TEXT_FORMAT)


def not_a_handler_job_error(record: logging.LogRecord) -> bool:
    """False for RQ's traceback of a failed handler job: the job's own batch line carries it."""
    return not (record.name == "rq.worker" and getattr(record, "func", None) in HANDLER_JOBS)


def configure_logging(env: Mapping[str, str] | None = None) -> logging.Handler:
    """Send every record of this process to standard error, one line each, in LOG_FORMAT, at LOG_LEVEL.

    For the processes' entry points (gunicorn's logger class, `smshooks worker`, `smshooks smtpd`),
    not for create_app: it replaces the root logger's handlers. Returns the handler, whose formatter
    gunicorn's own handlers take too.
    """
    env = os.environ if env is None else env
    level, kind = log_level(env), log_format(env)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    if level != "DEBUG":
        handler.addFilter(not_a_handler_job_error)
    root = logging.getLogger()
    for old in root.handlers[:]:  # logging.basicConfig's, or ours from an earlier call
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # rq.worker, rq.job and rq.scheduler are set again by RQ from work(logging_level=rq_level(...)).
    logging.getLogger("rq").setLevel(rq_level(level))
    return handler


_warned: set[str] = set()  # kept across fork(): a gunicorn worker inherits what its master has said


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log a start-up warning once in this process and in the processes it forks afterwards.

    gunicorn's master says the web app's warnings before it forks its workers (gunicorn_conf's
    on_starting), so create_app, run again in every worker, does not repeat them.
    """
    if message in _warned:
        return
    _warned.add(message)
    logger.warning(message)


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
