"""`smshooks release`, the Procfile's release step: every setting and handler checked, then the migration.

Heroku runs it once per deploy, before any new process starts; when it exits non-zero the
deploy fails and the previous release keeps serving. The web starts with a broken handler
(degraded) and the worker runs the others, so this is where a bad configuration is stopped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from webhooks.config import ConfigError, Settings, int_setting, split_secrets
from webhooks.console.config import ConsoleConfig
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.providers.status_maps import read_status_maps
from webhooks.telemetry.logs import log_format, log_level
from webhooks.telemetry.redaction import scrub_text, secrets_from_env


def _sentry_dsn(env: Mapping[str, str]) -> None:
    dsn = env.get("SENTRY_DSN")
    if dsn:
        from sentry_sdk.utils import BadDsn, Dsn

        try:
            Dsn(dsn)
        except BadDsn as err:
            raise ConfigError(f"SENTRY_DSN is not a Sentry DSN ({err})") from None


def _smtpd(env: Mapping[str, str]) -> None:
    if any(value for name, value in env.items() if name.startswith("SMTPD_")):  # only when smtpd is configured
        from webhooks.email.smtpd import SmtpdSettings

        SmtpdSettings.from_env(env)


def _web_concurrency(env: Mapping[str, str]) -> None:
    if env.get("WEB_CONCURRENCY"):
        int_setting(env, "WEB_CONCURRENCY", 1, minimum=1)  # gunicorn_conf reads it


# What the web's create_app reads besides Settings; each raises ConfigError naming the setting.
# gunicorn's master runs these before it forks (gunicorn_conf.on_starting).
WEB_CHECKS: tuple[Callable[[Mapping[str, str]], Any], ...] = (
    log_level,
    log_format,
    DigitaleoConfig.from_env,
    read_status_maps,
    # CONSOLE_PASSWORD / CONSOLE_USERS without SECRET_KEY (or equal to a WEBHOOK_SECRET) refuses the web's start
    lambda env: ConsoleConfig.from_env(env, split_secrets(env.get("WEBHOOK_SECRET"))),
    _sentry_dsn,
)
# What any process reads besides Settings and the handlers.
CHECKS: tuple[Callable[[Mapping[str, str]], Any], ...] = (*WEB_CHECKS, _smtpd, _web_concurrency)


def _checked_above(name: str) -> bool:
    return name.startswith("DIGITALEO_") or name.endswith("_STATUS_MAP")


def problems(env: Mapping[str, str]) -> tuple[Settings | None, list[str]]:
    """The settings, and everything that is wrong: bad settings, unknown and broken handlers, by name."""
    from webhooks.pipeline.jobs import Runtime

    found = []
    for check in CHECKS:
        try:
            check(env)
        except ConfigError as err:
            found.append(str(err))
    try:
        settings = Settings.from_env(env)
    except ConfigError as err:
        return None, [*found, str(err)]
    # What `smshooks worker` builds: handlers, their <NAME>_* settings, the fallback. What CHECKS read
    # and Runtime reads too is left out, so that its error does not hide the handlers' problems.
    try:
        runtime = Runtime.from_env({name: value for name, value in env.items() if not _checked_above(name)})
    except ConfigError as err:
        found.append(str(err))
    else:
        runtime.close()
        found.extend(runtime.broken.values())
    secrets = secrets_from_env(env, settings.webhook_secrets)
    return settings, [scrub_text(problem, secrets) for problem in found]


def run(env: Mapping[str, str] | None = None) -> int:
    """Check, then migrate when the database handler is enabled; 1 (deploy refused) on any problem."""
    env = os.environ if env is None else env
    settings, found = problems(env)
    if settings is None or found:
        for problem in found:
            print(f"smshooks release: {problem}", file=sys.stderr)
        print(
            f"smshooks release: {len(found)} problem(s); this release is refused, the running one keeps serving",
            file=sys.stderr,
        )
        return 1
    print(f"settings ok; handlers: {', '.join(settings.handlers)}")
    if "database" not in settings.handlers:
        print("no database handler in HANDLERS: no migration")
        return 0
    from sqlalchemy.exc import SQLAlchemyError

    from handlers.database import init_db

    try:
        init_db(settings.database_url)
    except SQLAlchemyError as err:
        reason = scrub_text(str(err).splitlines()[0], secrets_from_env(env, settings.webhook_secrets))
        print(f"smshooks release: cannot migrate the database at DATABASE_URL: {reason}", file=sys.stderr)
        return 1
    print("database ready")
    return 0
