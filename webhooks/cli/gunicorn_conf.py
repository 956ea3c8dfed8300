"""gunicorn settings for the Procfile's web process (`gunicorn -c python:webhooks.cli.gunicorn_conf`)."""

import os
import shutil
import tempfile
from pathlib import Path

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Requests are short (parse, one Redis round trip); sync workers, two per core, keep both cores busy.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
# gunicorn 27 opens a control socket under ~/.gunicorn by default; two servers on one
# machine (bench, tests) would fight over it, and nothing here uses it.
control_socket_disable = True
# Access log only on request, and never with the query string: it carries ?token=.
if os.environ.get("ACCESS_LOG", "").lower() in ("1", "true", "yes"):
    accesslog = "-"
    access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
errorlog = "-"

# /metrics sums the callback counters of every gunicorn worker: prometheus_client's
# multiprocess mode keeps them in files in PROMETHEUS_MULTIPROC_DIR. It must be in the
# environment before a worker first imports prometheus_client (webhooks.telemetry.metrics imports it
# lazily for that reason: this file's package is imported before this file runs).
_METRICS_PREFIX = "smshooks-metrics-"


def on_starting(server):
    """A private folder unless the platform gives one, emptied: an earlier run's counts would add up."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Made here, not when this file is imported, so a gunicorn that never starts leaves none behind.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_PREFIX)
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A dead worker's counters stay (totals never drop); its live gauges are removed."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if path.name.startswith(_METRICS_PREFIX) and path.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(path, ignore_errors=True)  # only the folder made above, never a given one
