"""gunicorn settings for the Procfile's web process (`gunicorn -c python:webhooks.cli.gunicorn_conf`)."""

import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from gunicorn.glogging import Logger

from webhooks.config import ConfigError, Settings
from webhooks.telemetry.logs import configure_logging, warn_once

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# A callback is short (parse, one Redis round trip) and much of it is the wait for Redis: on disk
# (appendfsync always), Redis fsyncs once for all the writes that reached it in one turn of its event
# loop, and answers them together. gevent's workers keep WEB_CONNECTIONS callbacks in flight per process,
# so many share one fsync (group commit) where a sync worker offers one. Chosen over sync and gthread
# by bench/web_concurrency (docs/operations.md, "Web concurrency"). gunicorn patches the worker's
# standard library for gevent after the fork; the master below never does I/O under a lock.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = "gevent"
worker_connections = int(os.environ.get("WEB_CONNECTIONS") or 64)
# gunicorn itself imports ssl before any worker patches it, so gevent warns in every worker; the
# warning names the modules that kept unpatched names from it, and the only one is redis.asyncio,
# which smshooks never uses (TLS Redis through the patched module: tests/cli/test_tls_redis.py).
warnings.filterwarnings("ignore", message=r"Monkey-patching ssl after ssl has already been imported")
timeout = 30
# Heroku (and platforms like it) sends SIGTERM to every process of a dyno and SIGKILL 30 s later:
# a request still running after 25 s is cut by the master, which then has time to exit cleanly.
graceful_timeout = 25
# gunicorn 27 opens a control socket under ~/.gunicorn by default; two servers on one
# machine (bench, tests) would fight over it, and nothing here uses it.
control_socket_disable = True
# Access log only on request, and never with the query string: it carries ?token=.
if os.environ.get("ACCESS_LOG", "").lower() in ("1", "true", "yes"):
    accesslog = "-"
    access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
errorlog = "-"


class OneLineLogger(Logger):
    """gunicorn's own log (errors, access) and the app's: one line a record, in LOG_FORMAT, to standard error.

    gunicorn's handlers keep their streams and take our formatter; the app's loggers (webhooks.*, Flask's)
    reach the root logger's handler, which `configure_logging` installs here, in the master, before it forks.
    Not `logconfig_dict`: with one set, gunicorn builds an access line for every request even when
    ACCESS_LOG is off.
    """

    def setup(self, cfg):
        super().setup(cfg)
        ours = configure_logging()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(ours.formatter)


logger_class = OneLineLogger

# /metrics sums the callback counters of every gunicorn worker: prometheus_client's
# multiprocess mode keeps them in files in PROMETHEUS_MULTIPROC_DIR. It must be in the
# environment before a worker first imports prometheus_client (webhooks.telemetry.metrics imports it
# lazily for that reason: this file's package is imported before this file runs).
_METRICS_PREFIX = "smshooks-metrics-"


def on_starting(server):
    """Settings checked once, here, before any fork; then a private metrics folder unless the platform gives one."""
    settings = _settings_or_exit(server)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Made here, not when this file is imported, so a gunicorn that never starts leaves none behind.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_PREFIX)
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()  # an earlier run's counts would add up
    _warn_at_start(settings)


def _settings_or_exit(server) -> Settings:
    """The settings, or one error line and exit 1 when a worker's create_app would refuse them.

    Left to the workers, each fails to boot on its own; when two fail together gunicorn's halt reaps
    the second inside its own shutdown and raises again (arbiter.stop -> reap_workers -> HaltServer),
    ending in a bare multi-line traceback instead of the message.
    """
    from webhooks.cli.release import WEB_CHECKS
    from webhooks.config import split_secrets
    from webhooks.telemetry.redaction import scrub_text, secrets_from_env

    try:
        for check in WEB_CHECKS:
            check(os.environ)
        return Settings.from_env()
    except ConfigError as err:
        secrets = secrets_from_env(os.environ, split_secrets(os.environ.get("WEBHOOK_SECRET")))
        server.log.error("%s; the web is not started", scrub_text(str(err), secrets))
        sys.exit(1)


def _warn_at_start(settings: Settings) -> None:
    """The web app's start-up warnings, said once here in the master: workers inherit warn_once's memory."""
    from webhooks.app import handler_problems, startup_warnings  # after PROMETHEUS_MULTIPROC_DIR is set

    # Plug-ins are imported here once, before the fork; a broken one is warned about here, not per worker.
    for message in startup_warnings(settings, handler_problems(settings, os.environ)):
        warn_once(logging.getLogger("webhooks.app"), message)


def child_exit(server, worker):
    """A dead worker's counters stay (totals never drop); its live gauges are removed."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if path.name.startswith(_METRICS_PREFIX) and path.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(path, ignore_errors=True)  # only the folder made above, never a given one
