"""`smshooks worker`: an RQ SimpleWorker on the project's queue that outlives Redis restarts.

SimpleWorker, not the forking Worker: it runs jobs in the process that built the
handlers, so a database engine (and its connection pool) is made once per worker and
not once per job, and no fork is paid per job. More throughput comes from more worker
processes on the same Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, worker_registration
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer

from handlers.registry import HandlerError
from webhooks.config import Settings
from webhooks.pipeline import jobs
from webhooks.pipeline.deadlines import watching
from webhooks.pipeline.queueing import FLAG_TTL, Ingest, queue_for
from webhooks.pipeline.recovery import LEASE, Lease, Orphan, recover, requeue
from webhooks.pipeline.watchdog import watchdog_loop
from webhooks.redis_connection import describe, redis_client
from webhooks.telemetry.logs import redact_logs, rq_level
from webhooks.telemetry.sentry import init_sentry

log = logging.getLogger("webhooks.worker")


# Seconds a running job may go on after SIGTERM before it goes back to the queue and the worker
# exits: Heroku (and Kubernetes by default) send SIGKILL 30 s after SIGTERM.
STOP_GRACE = 20


class Worker(SimpleWorker):
    """SimpleWorker that shares one `stopping` event with `run`, and stops and dies cleanly.

    RQ 3.0 records a stop request only when busy: an idle worker's `work()` just
    returns, which `run` could not tell from a Redis failure. And RQ installs its
    signal handlers only after starting its scheduler process: a signal in between
    (ours set the event) is carried over here, so the loop stops cleanly and its
    teardown stops the scheduler.

    On SIGTERM a running job finishes (RQ's warm shutdown); one still running STOP_GRACE s
    later goes back to the queue and the process exits before the platform's SIGKILL. Its
    key in Redis lives LEASE s at a time (pipeline/recovery.py), so the job of a worker
    killed outright goes back to the queue LEASE s later, requeued by any other worker, or
    by the next one to start, which looks first thing.
    """

    stopping: threading.Event
    lease: Lease | None = None
    _last_beat = 0.0  # time.monotonic() of the last heartbeat sent outside a pipeline

    def request_stop(self, signum, frame):
        self.stopping.set()
        super().request_stop(signum, frame)  # raises StopRequested when idle
        timer = threading.Timer(STOP_GRACE, self._give_back)
        timer.daemon = True
        timer.start()

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if self.stopping.is_set():
            self._stop_requested = True

    def register_birth(self) -> None:
        super().register_birth()
        self.heartbeat()  # RQ gave the key worker_ttl + 60 s
        self.lease = Lease(self)
        self.lease.start()

    def heartbeat(self, timeout=None, pipeline=None) -> None:
        # RQ's own heartbeats (worker_ttl + 60 s, or the job's timeout + 60 s) would keep a dead
        # worker's key, and so its job, for minutes.
        if pipeline is not None:
            super().heartbeat(LEASE, pipeline)
            return
        # RQ beats three times around every job, each three writes sent one by one. The lease
        # renews the key every RENEW_EVERY s from its own thread, so a beat within a second of the
        # last adds nothing; the others go in one round trip (with `appendfsync always`, one fsync
        # waited for instead of three).
        if self.lease is not None and time.monotonic() - self._last_beat < 1.0:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(LEASE, pipe)
            pipe.execute()
        self._last_beat = time.monotonic()

    def set_state(self, state, pipeline=None) -> None:
        # RQ sets IDLE after every job and again before it waits for the next: one write, not two.
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def clean_registries(self) -> None:
        """Requeue dead workers' jobs, then RQ's own maintenance (whose sweep would fail them much later)."""
        if self.lease is None or not self.lease.quiet:
            for queue in self.queues:
                # RQ's sweep runs under this lock: holding it, entries it could take are safe to take too.
                locked = queue.acquire_maintenance_lock()
                try:
                    recover(queue, exclude={self.name}, expiring=locked)
                finally:
                    if locked:
                        queue.release_maintenance_lock()
        super().clean_registries()

    def work(self, *args, **kwargs) -> bool:
        try:
            return super().work(*args, **kwargs)
        finally:
            self._end_lease()  # also when it failed before its teardown could run

    def teardown(self) -> None:
        self._end_lease()  # first: a renewal after register_death would bring the key back
        super().teardown()

    def _end_lease(self) -> None:
        if self.lease is not None:
            self.lease.stop()

    def _give_back(self) -> None:
        """STOP_GRACE s after SIGTERM and still in a job: requeue it and exit before the SIGKILL.

        Exiting cuts the handler off as a SIGKILL would (its database transaction rolls back),
        but the job is back at the front of the queue at once; a handler that had returned
        has its mark, and the job's next run returns without handling again.
        """
        lease = self.lease
        executions = list(self.executions.values())
        if lease is None or not executions:
            return  # the job ended meanwhile: the worker is on its way out
        given_back = []
        for execution in executions:
            orphan = Orphan(execution.job_id, execution.id, self.name)
            for name in self.queue_names():
                try:
                    if requeue(Queue(name, connection=lease.redis, serializer=self.serializer), orphan):
                        given_back.append(execution.job_id)
                        break
                except RedisError as err:
                    log.warning("could not requeue job %s on stopping (%s)", execution.job_id, describe(err))
        if not given_back:
            return  # finished just now, or Redis is away: a SIGKILL's recovery will do
        log.warning(
            "job(s) %s still running %d s after SIGTERM: back on the queue; exiting",
            ", ".join(given_back),
            STOP_GRACE,
        )
        lease.stop()
        try:
            with lease.redis.pipeline() as pipe:
                worker_registration.unregister(self, pipe)
                pipe.delete(self.key, self.executions_key)
                pipe.execute()
        except RedisError:
            pass  # the key expires within LEASE s anyway
        logging.shutdown()
        os._exit(0)


def _kick_forever(settings: Settings, stop: threading.Event) -> None:
    """Every few seconds, make sure events left in the inbox get a dispatch.

    Covers a dispatch enqueue that failed after its events were stored, and a
    dispatcher killed mid-job; both leave events waiting, never lost.
    """
    redis = redis_client(settings.redis_url, settings.redis_ssl_cert_reqs, socket_connect_timeout=2, socket_timeout=5)
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
    # RQ says nothing at INFO (rq_level): this is the start-up line.
    log.info("worker started on queue %s; handlers: %s", settings.queue_name, ", ".join(runtime.handlers) or "none")
    for reason in runtime.broken.values():
        # The others run; this one's jobs fail with this reason, then reach the fallback
        # and the failed registry, from where `smshooks replay` delivers them once it is fixed.
        log.error("%s", reason)
    stopping = threading.Event()  # a SIGTERM/SIGINT arrived, or run is returning

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    if not burst:
        threading.Thread(target=_kick_forever, args=(settings, stopping), daemon=True, name="kick").start()
        if watching(settings):
            args = (settings, runtime.digitaleo, stopping)
            threading.Thread(target=watchdog_loop, args=args, daemon=True, name="receipt-watchdog").start()
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
                # RQ's scheduler process rebuilds its client from this one's pool (class and kwargs), TLS included.
                redis = redis_client(settings.redis_url, settings.redis_ssl_cert_reqs, socket_connect_timeout=5)
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
                # RQ's six lines a job only at LOG_LEVEL=DEBUG; the batch line is counted_handler_job's.
                worker.work(with_scheduler=True, burst=burst, logging_level=rq_level(settings.log_level))
            except RedisError as err:
                log.warning("Redis unavailable (%s); retrying in %.0fs", describe(err), delay)
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
