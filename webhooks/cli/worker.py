"""`smshooks worker`: an RQ SimpleWorker on the project's queue that outlives Redis restarts.

SimpleWorker, not the forking Worker: it runs jobs in the process that built the
handlers, so a database engine (and its connection pool) is made once per worker and
not once per job, and no fork is paid per job. More throughput comes from more worker
processes on the same Redis.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer

from handlers.registry import HandlerError
from webhooks.config import Settings
from webhooks.pipeline import jobs
from webhooks.pipeline.queueing import FLAG_TTL, Ingest, queue_for
from webhooks.telemetry.logs import redact_logs
from webhooks.telemetry.sentry import init_sentry

log = logging.getLogger("webhooks.worker")


class Worker(SimpleWorker):
    """SimpleWorker that shares one `stopping` event with `run`.

    RQ 3.0 records a stop request only when busy: an idle worker's `work()` just
    returns, which `run` could not tell from a Redis failure. And RQ installs its
    signal handlers only after starting its scheduler process: a signal in between
    (ours set the event) is carried over here, so the loop stops cleanly and its
    teardown stops the scheduler.
    """

    stopping: threading.Event

    def request_stop(self, signum, frame):
        self.stopping.set()
        super().request_stop(signum, frame)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if self.stopping.is_set():
            self._stop_requested = True


def _kick_forever(settings: Settings, stop: threading.Event) -> None:
    """Every few seconds, make sure events left in the inbox get a dispatch.

    Covers a dispatch enqueue that failed after its events were stored, and a
    dispatcher killed mid-job; both leave events waiting, never lost.
    """
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    ingest = Ingest(redis, queue_for(redis, settings.queue_name), settings.dedupe_window)
    while not stop.wait(FLAG_TTL / 2):
        try:
            ingest.kick()
        except RedisError:
            pass  # the worker loop reports Redis outages


def run(settings: Settings, burst: bool = False) -> int:
    """Work until asked to stop; reconnect (with backoff) whenever Redis goes away."""
    redact_logs(settings)
    init_sentry(settings, web=False)
    runtime = jobs.Runtime.from_env()
    if not runtime.handlers:
        # Nothing could run: say why and stop, rather than fail every job until someone looks.
        raise HandlerError("no handler in HANDLERS can start: " + "; ".join(runtime.broken.values()))
    jobs.configure(runtime)
    log.info("handlers: %s", ", ".join(runtime.handlers) or "none")
    for reason in runtime.broken.values():
        # The others run; this one's jobs fail with this reason, then reach the fallback
        # and the failed registry, from where `smshooks replay` delivers them once it is fixed.
        log.error("%s", reason)
    stopping = threading.Event()  # a SIGTERM/SIGINT arrived, or run is returning

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    if not burst:
        threading.Thread(target=_kick_forever, args=(settings, stopping), daemon=True, name="kick").start()
        if runtime.digitaleo.enabled and runtime.digitaleo.safety_interval:
            from webhooks.providers.digitaleo.sync import safety_loop

            threading.Thread(
                target=safety_loop, args=(settings, runtime.digitaleo, stopping), daemon=True, name="digitaleo-safety"
            ).start()
    delay = 1.0
    try:
        while not stopping.is_set():
            # Ours until RQ installs its own in work(), and again while waiting to reconnect.
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            started = time.monotonic()
            try:
                # Building the worker talks to Redis too (CLIENT SETNAME), so it is inside the try.
                redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5)
                # An idle RQ worker blocks in BLPOP for worker_ttl - 15 s and sweeps for abandoned
                # jobs only between dequeues: the TTL is what makes the interval true.
                worker = Worker(
                    [queue_for(redis, settings.queue_name)],
                    connection=redis,
                    serializer=JSONSerializer,
                    maintenance_interval=settings.maintenance_interval,
                    worker_ttl=settings.maintenance_interval + 15,
                )
                worker.stopping = stopping
                worker.work(with_scheduler=True, burst=burst, logging_level=settings.log_level)
            except RedisError as err:
                log.warning("Redis unavailable (%s); retrying in %.0fs", type(err).__name__, delay)
            except StopRequested:
                break  # RQ's handler fired outside its loop
            else:
                if burst or stopping.is_set():
                    break
                log.warning("worker stopped unexpectedly; restarting in %.0fs", delay)
            if time.monotonic() - started > 60:
                delay = 1.0  # it had been healthy: this is a new outage
            stopping.wait(delay)
            delay = min(delay * 2, 30.0)
        return 0
    finally:
        stopping.set()
        runtime.close()
