"""The five fault scenarios of bench/faults, each a function `(Options) -> Outcome`.

Every scenario runs the real processes (bench.fault_rig.Stack), streams callbacks from a
separate process (bench.fault_sender), injects one fault, waits until the service is idle,
and compares the event ids the sender got a 2xx for with the rows in sms_events and with the
deliveries the counting handler saw (bench.fault_handlers). lost = acknowledged events missing
from either; duplicated = deliveries beyond the first of an event.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import text

from bench.fault_handlers import deliveries, init_counter
from bench.fault_rig import SECRET, Stack, TcpProxy, wait_for
from bench.fault_sender import REORDERED_FINAL, receipt
from handlers.database import init_db, make_engine
from tests.digitaleo_standin import DigitaleoStandIn, made_up_history
from webhooks.events import utcnow
from webhooks.pipeline.queueing import INBOX, queue_for
from webhooks.pipeline.recovery import LEASE
from webhooks.providers import ParseContext
from webhooks.providers.digitaleo.statuses import parse_records

HANDLERS = "database,bench.fault_handlers:Counter"
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclasses.dataclass
class Options:
    workdir: Path
    rate: float = 30  # callbacks per second
    seconds: float = 30  # how long the callbacks stream (scenarios 1, 2, 4)
    outage: float = 60  # seconds the handler's service (PostgreSQL) is down in scenario 3
    redis_outage: float = 10  # seconds Redis stays dead in scenario 2
    groups: int = 60  # messages in scenario 5 (9 callbacks each)
    pg_url: str = PG_URL
    appendfsync: str | None = None  # Redis's fsync policy; None: the embedded default's (PERSISTENCE)


def quick(workdir: Path) -> Options:
    """Short durations for the test suite and `bench/faults --quick`."""
    return Options(workdir, rate=20, seconds=8, outage=4, redis_outage=3, groups=12)


@dataclasses.dataclass
class Outcome:
    sent: int = 0
    acknowledged: int = 0
    stored: int = 0
    duplicated: int = 0
    lost: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is not None or (self.lost == 0 and self.duplicated == 0 and not self.problems)

    def line(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        return (
            f"sent {self.sent}, acknowledged {self.acknowledged}, stored {self.stored}, "
            f"duplicated {self.duplicated}, lost {self.lost}"
        )


class Run:
    """One scenario's parts: a stack on SQLite (or `database_url`) plus the counting handler."""

    def __init__(
        self, opts: Options, name: str, database_url: str | None = None, read_url: str | None = None, **env: str
    ) -> None:
        self.workdir = opts.workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite:///{self.workdir / 'smshooks.db'}"
        self.read_url = read_url or self.database_url  # scenario 3 reads around its proxy
        self.counter = str(self.workdir / "deliveries.db")
        init_db(self.read_url)
        init_counter(self.counter)
        # Pings ask the Digitaleo stand-in (in this process) in lookup mode: only what was pinged is
        # read, so a lost ping shows as lost statuses; no safety sync to make up for one.
        self.api = DigitaleoStandIn()
        self.api.on_demand = True
        digitaleo = {
            **self.api.env(),
            "DIGITALEO_MODE": "lookup",
            "DIGITALEO_PING_DELAY": "1",
            "DIGITALEO_SAFETY_INTERVAL": "0",
        }
        self.stack = Stack(
            self.workdir,
            {
                "DATABASE_URL": self.database_url,
                "HANDLERS": HANDLERS,
                "FAULT_COUNTER_DB": self.counter,
                **digitaleo,
                **env,
            },
            appendfsync=opts.appendfsync,
        )

    def __enter__(self) -> Run:
        self.api.start()
        self.stack.redis_server.start()
        self.stack.start_web()
        self.stack.start_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()
        self.api.stop()

    def stored(self) -> set[str]:
        engine = make_engine(self.read_url)
        try:
            with engine.connect() as conn:
                return {row[0] for row in conn.execute(text("SELECT event_id FROM sms_events"))}
        finally:
            engine.dispose()

    def idle(self) -> bool:
        """Nothing left anywhere: inbox, queue, running, scheduled for retry (abandoned jobs included)."""
        redis = self.stack.redis
        queue = queue_for(redis, "smshooks")
        return not (
            redis.llen(INBOX)
            or queue.count
            or StartedJobRegistry(queue=queue).count
            or ScheduledJobRegistry(queue=queue).count
        )

    def tally(self, sent: dict, deadline: float) -> Outcome:
        """Wait (up to `deadline` s) until every acknowledged event is stored and the service is idle; count."""
        acked = set(sent["acked"]) | ping_events(sent.get("acked_pings", []))

        def drained() -> bool:
            return acked <= self.stored() and acked <= deliveries(self.counter).keys() and self.idle()

        outcome = Outcome(sent=sent["sent"], acknowledged=sent["acked_callbacks"])
        try:
            wait_for(drained, timeout=deadline, interval=1)
        except AssertionError:
            outcome.problems.append(f"not drained within {deadline:.0f} s")
        time.sleep(2)  # a late re-run (a duplicate) would land now
        stored, counts = self.stored(), deliveries(self.counter)
        outcome.stored = len(stored)
        outcome.duplicated = sum(n - 1 for n in counts.values())
        outcome.lost = len(acked - (stored & counts.keys()))
        failed = [
            j
            for j in FailedJobRegistry(queue=queue_for(self.stack.redis, "smshooks")).get_job_ids()
            if j.startswith("handle-")
        ]
        if failed:
            outcome.problems.append(f"{len(failed)} handler job(s) failed for good: {failed[:3]}")
        outcome.notes.append(
            f"answers {sent['statuses']}; {len(set(sent.get('acked_pings', [])))} pings acknowledged, "
            f"{self.api.calls['smsstatus']} /smsstatus calls"
        )
        return outcome


def ping_events(sms_ids: list[str]) -> set[str]:
    """The event ids an acknowledged ping must lead to: those of the history the stand-in gives its SMS."""
    from zoneinfo import ZoneInfo

    records = [record for sms_id in set(sms_ids) for record in made_up_history(sms_id)]
    events, bad = parse_records(records, ParseContext(received_at=utcnow()), ZoneInfo("Europe/Paris"))
    assert not bad, bad
    return {event.event_id for event in events}


def _sender_timeout(seconds: float) -> float:
    return seconds + 60


def _wait_mid_job(run: Run) -> list[str]:
    """Wait until the counting handler is in the middle of a job; the jobs running then."""
    queue = queue_for(run.stack.redis, "smshooks")
    started = StartedJobRegistry(queue=queue)
    wait_for(lambda: any("Counter" in j for j in started.get_job_ids()), timeout=30, interval=0.02)
    return started.get_job_ids()


def worker_killed(opts: Options) -> Outcome:
    """1. A worker SIGKILLed in the middle of handler jobs, then restarted."""
    # Slow handler jobs (0.5 s each) so the kill lands mid-job. Production JOB_TIMEOUT: the cut jobs
    # come back through the dead worker's lease (webhooks/pipeline/recovery.py), not RQ's own sweep,
    # which takes them JOB_TIMEOUT + 60 s after they started. The killed worker's scheduler holds its
    # lock for 61 s (RQ's); a short maintenance interval lets the new worker's scheduler take it over
    # soon after, and with it the Digitaleo syncs the pings scheduled meanwhile.
    with Run(
        opts, "1-worker-killed", FAULT_HANDLER_DELAY="0.5", MAINTENANCE_INTERVAL="3", RETRY_INTERVALS="1,1,1"
    ) as run:
        sender = run.stack.send("steady", opts.rate, opts.seconds, 1_000_000)
        time.sleep(opts.seconds / 3)
        _wait_mid_job(run)
        run.stack.kill("worker")
        killed = time.monotonic()
        redis = run.stack.redis
        started = StartedJobRegistry(queue=queue_for(redis, "smshooks"))
        cut = [j for j in started.get_job_ids() if j.startswith("handle-")]  # the dead worker's
        time.sleep(1)
        restarted = time.monotonic()
        run.stack.start_worker()
        try:
            wait_for(lambda: all(_finished(redis, j) for j in cut), timeout=RECOVERY_BOUND + 30, interval=0.05)
            recovered: float | None = time.monotonic()
        except AssertionError:
            recovered = None
        outcome = run.tally(run.stack.sender_result(sender, _sender_timeout(opts.seconds)), deadline=180)
        if not cut:
            outcome.problems.append("the kill landed between jobs: nothing was cut off")
        elif recovered is None:
            outcome.problems.append(f"the cut job(s) {cut} did not run again within {RECOVERY_BOUND + 30} s")
        else:
            outcome.notes.append(
                f"recovery: {len(cut)} cut job(s) ran again {recovered - killed:.1f} s after the SIGKILL, "
                f"{recovered - restarted:.1f} s after the new worker started (lease {LEASE} s; RQ's own sweep "
                f"would take them JOB_TIMEOUT + 60 s = 120 s after they started)"
            )
            if recovered - restarted > RECOVERY_BOUND:
                outcome.problems.append(f"recovery took over {RECOVERY_BOUND} s")
        outcome.notes.append(f"killed during {cut}")
        return outcome


RECOVERY_BOUND = LEASE + 10  # seconds from the new worker's start: generous (the lease, one renewal, start-up)


def _finished(redis: Redis, job_id: str) -> bool:
    return Job.fetch(job_id, connection=redis, serializer=JSONSerializer).get_status() == JobStatus.FINISHED


def redis_killed(opts: Options) -> Outcome:
    """2. Redis SIGKILLed under load and restarted: 503s meanwhile, nothing acknowledged lost."""
    seconds = max(opts.seconds, opts.redis_outage + 6)
    # Production JOB_TIMEOUT: a job whose handler returned while Redis was down waits (up to it)
    # to record that before returning, so the outage must be shorter (webhooks/pipeline/handled.py).
    # Slow counting jobs, and the kill lands while one runs: its handler returns during the outage.
    with Run(opts, "2-redis-killed", RETRY_INTERVALS="1,2,4", FAULT_HANDLER_DELAY="0.5") as run:
        sender = run.stack.send("steady", opts.rate, seconds, 2_000_000)
        time.sleep(3)
        mid_job = _wait_mid_job(run)
        run.stack.redis_server.stop()  # SIGKILL: no shutdown, no final AOF flush
        time.sleep(opts.redis_outage)
        run.stack.redis_server.start()
        sent = run.stack.sender_result(sender, _sender_timeout(seconds))
        outcome = run.tally(sent, deadline=180)
        outcome.notes.append(f"Redis killed while running {mid_job}")
        if not sent["statuses"].get("503"):
            outcome.problems.append("no callback got a 503 while Redis was down")
        others = {s: n for s, n in sent["statuses"].items() if s not in ("200", "503")}
        if others:
            outcome.problems.append(f"answers other than 200 and 503: {others}")
        return outcome


def _private_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A database of our own on the PostgreSQL at `admin_url` (others' tests drop tables in theirs)."""
    import psycopg

    name = f"smshooks_faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}")), drop


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"))


def _intervals_covering(outage: float) -> str:
    """Retry intervals (doubling from 1 s) whose sum outlasts the outage twice over."""
    intervals, total = [], 0
    while total < 2 * outage + 10:
        intervals.append(min(2 ** len(intervals), 30))
        total += intervals[-1]
    return ",".join(map(str, intervals))


def handler_service_down(opts: Options) -> Outcome:
    """3. The database handler's PostgreSQL unreachable for `outage` seconds, then back."""
    try:
        own_url, drop = _private_database(opts.pg_url)
    except Exception as err:  # noqa: BLE001 (any failure to reach PostgreSQL means: skip)
        return Outcome(
            skipped=f"no PostgreSQL answers at {opts.pg_url} ({type(err).__name__}); "
            f"set TEST_POSTGRES_URL to run scenario 3"
        )
    proxy = TcpProxy((urlsplit(own_url).hostname or "127.0.0.1", urlsplit(own_url).port or 5432))
    proxy.start()
    lead = max(3.0, opts.seconds / 4)
    try:
        with Run(
            opts,
            "3-postgres-down",
            _via(own_url, proxy.port),
            own_url,
            RETRY_INTERVALS=_intervals_covering(opts.outage),
        ) as run:
            sender = run.stack.send("steady", opts.rate, 2 * lead + opts.outage, 3_000_000)
            time.sleep(lead)
            proxy.stop()
            time.sleep(opts.outage)
            waiting = len(deliveries(run.counter).keys() - run.stored())
            proxy.start()
            sent = run.stack.sender_result(sender, _sender_timeout(2 * lead + opts.outage))
            outcome = run.tally(sent, deadline=2 * opts.outage + 120)
            outcome.notes.append(
                f"at the end of the outage {waiting} event(s) had reached the counting handler but not PostgreSQL"
            )
            if not waiting:
                outcome.problems.append("the outage held nothing back: the fault did not bite")
            return outcome
    finally:
        proxy.stop()
        drop()


def web_worker_killed(opts: Options) -> Outcome:
    """4. gunicorn workers SIGKILLed mid-request (three times); the master replaces them, the provider retries."""
    with Run(opts, "4-web-worker-killed") as run:
        sender = run.stack.send("steady", opts.rate, opts.seconds, 4_000_000)
        cut, retried = [], []
        for n in range(3):
            time.sleep(opts.seconds / 4)
            # A callback stuck half-way through its body pins a worker mid-request: kill that one.
            path, body, _ = receipt(4_900_000 + n)
            client, worker = run.stack.start_half_request(path, body)
            os.kill(worker, signal.SIGKILL)
            try:
                cut.append(client.recv(1024) == b"")  # the connection closes with no answer
            except OSError:
                cut.append(True)
            client.close()
            retried.append(
                requests.post(
                    f"{run.stack.base}{path}?token={SECRET}",
                    data=body,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    timeout=10,
                )
            )
        sent = run.stack.sender_result(sender, _sender_timeout(opts.seconds))
        sent = {
            **sent,
            "sent": sent["sent"] + 2 * len(retried),
            "acked_callbacks": sent["acked_callbacks"] + sum(r.ok for r in retried),
            "acked": sent["acked"] + [i for r in retried if r.ok for i in r.json()["event_ids"]],
        }
        outcome = run.tally(sent, deadline=60)
        wait_for(lambda: len(run.stack.web_workers()) == 2, timeout=30)
        outcome.notes.append(
            f"{sum(cut)} of 3 requests cut with no answer when their worker was killed; "
            f"their retries answered {[r.status_code for r in retried]}"
        )
        if not all(cut):
            outcome.problems.append("a request answered although its worker was killed mid-request")
        server_errors = {s: n for s, n in sent["statuses"].items() if s.startswith("5")}
        if server_errors:
            outcome.problems.append(f"5xx answers: {server_errors}")
        return outcome


def repeated_and_reordered(opts: Options) -> Outcome:
    """5. Every callback three times, and each message's receipts newest-status first."""
    callbacks = 9 * opts.groups
    seconds = (callbacks + 0.5) / opts.rate  # the sender sends int(rate * seconds) callbacks
    with Run(opts, "5-repeated-reordered") as run:
        sender = run.stack.send("reordered", opts.rate, seconds, 0)
        sent = run.stack.sender_result(sender, _sender_timeout(seconds))
        outcome = run.tally(sent, deadline=60)
        if sent["acked_callbacks"] != callbacks:
            outcome.problems.append(f"{callbacks - sent['acked_callbacks']} callback(s) not acknowledged")
        engine = make_engine(run.read_url)
        with engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT message_id, status FROM sms_messages")).all())
        engine.dispose()
        wrong = {g: statuses.get(str(g)) for g in range(opts.groups) if statuses.get(str(g)) != REORDERED_FINAL[g % 2]}
        if wrong:
            outcome.problems.append(f"sms_messages not at the highest-ranked status: {dict(list(wrong.items())[:5])}")
        outcome.notes.append(f"{opts.groups} messages, each at its highest-ranked status: {not wrong}")
        return outcome


SCENARIOS: dict[str, Callable[[Options], Outcome]] = {
    "worker-killed": worker_killed,
    "redis-killed": redis_killed,
    "handler-service-down": handler_service_down,
    "web-worker-killed": web_worker_killed,
    "repeated-and-reordered": repeated_and_reordered,
}
