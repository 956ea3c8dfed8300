"""The `smshooks` command line."""

from __future__ import annotations

import argparse
import os
import sys

from handlers.registry import HandlerError
from webhooks.config import ConfigError, Settings
from webhooks.telemetry.logs import configure_logging

from .operate import add_commands


def _run(args: argparse.Namespace) -> int:
    from .run import run

    return run(dict(os.environ))


def _worker(args: argparse.Namespace) -> int:
    from .worker import run

    settings = Settings.from_env()
    configure_logging()  # one line a record, LOG_FORMAT, RQ's per-job lines only at DEBUG
    return run(settings, burst=args.burst)


def _initdb(args: argparse.Namespace) -> int:
    from handlers.database import init_db

    settings = Settings.from_env()
    init_db(settings.database_url)
    print("database ready")
    return 0


def _release(args: argparse.Namespace) -> int:
    from .release import run

    return run()


def _smtpd(args: argparse.Namespace) -> int:
    from webhooks.email.smtpd import SmtpdSettings, run
    from webhooks.telemetry.logs import redact_logs
    from webhooks.telemetry.sentry import init_sentry

    settings = Settings.from_env()
    smtpd = SmtpdSettings.from_env(os.environ)
    configure_logging()  # one line a record, in LOG_FORMAT
    redact_logs(settings)
    init_sentry(settings, web=False)  # logged errors (a 451 for a bug) reach Sentry, secret scrubbed
    return run(settings, smtpd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smshooks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run web, worker and (unless REDIS_URL is set) a Redis of its own").set_defaults(
        func=_run
    )
    worker = commands.add_parser("worker", help="run an RQ worker on the project's queue")
    worker.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    worker.set_defaults(func=_worker)
    commands.add_parser("initdb", help="create or migrate the database tables").set_defaults(func=_initdb)
    commands.add_parser(
        "release", help="the Procfile's release step: check every setting and handler, then migrate the database"
    ).set_defaults(func=_release)
    commands.add_parser("smtpd", help="receive provider emails over SMTP (SMTPD_RECIPIENTS, SMTPD_PORT)").set_defaults(
        func=_smtpd
    )
    add_commands(commands)  # failed, replay, handlers
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, HandlerError) as err:
        print(f"smshooks: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
