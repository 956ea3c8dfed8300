"""A handler job's Redis round trips, counted on a real Redis: one before its handler, one after.

Before the handler, one pipeline counts the attempt (`job.meta["attempts"]`) and reads the job's
handled mark and its lane's gone mark; after it, one pipeline writes the handled mark with the
success's counts for /metrics (and, for an ordered handler, releases its messages' order). A test
here fails when a change adds a round trip back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from redis.connection import AbstractConnection
from rq.job import Job
from rq.serializers import JSONSerializer

from handlers import Handler
from handlers.base import DestinationGone
from handlers.policy import Policy
from tests.conftest import RedisServer
from webhooks.cli.worker import Worker
from webhooks.config import Settings
from webhooks.events import EVENT_SCHEMA, Event, Kind, Status, utcnow
from webhooks.pipeline import gone, handled, jobs, ordering
from webhooks.pipeline.queueing import INBOX, Ingest, queue_for
from webhooks.telemetry import metrics


class Quiet(Handler):
    """Touches no Redis: every round trip counted is the job's own."""

    name = "quiet"
    fail: Exception | None = None

    def handle_batch(self, events):
        if self.fail is not None:
            raise self.fail


class OrderedQuiet(Quiet):
    name = "ordered"
    ordered = True


class RoundTrips:
    """Counts what this thread sends to Redis: a command alone, or a whole pipeline, is one send."""

    def __init__(self) -> None:
        self.count = 0
        self.thread = threading.get_ident()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    send = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        if threading.get_ident() == counter.thread:
            counter.count += 1
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return counter


@pytest.fixture
def runtime(redis_server) -> Iterator[jobs.Runtime]:
    settings = Settings.from_env({"REDIS_URL": redis_server.url, "HANDLERS": "database"})
    handlers = {"quiet": Quiet(), "ordered": OrderedQuiet()}
    policies = {"ordered": Policy.from_env("ordered", {}, settings.retry_intervals, ordered=True)}
    current = jobs.Runtime(settings, handlers, policies)
    jobs.configure(current)
    yield current
    jobs.configure(None)


def handler_job(redis: Redis, handler: str) -> Job:
    event = EVENT_SCHEMA.dump(Event("redoxygen", Kind.RECEIPT, Status.DELIVERED, "m1", utcnow()))
    queue_for(redis, "smshooks").enqueue(
        "webhooks.pipeline.jobs.handle", handler, [event], job_id=f"handle-{handler}-x"
    )
    return Job.fetch(f"handle-{handler}-x", connection=redis, serializer=JSONSerializer)


def attempts(redis: Redis, job: Job) -> int:
    return Job.fetch(job.id, connection=redis, serializer=JSONSerializer).meta["attempts"]


def successes(redis: Redis, handler: str) -> int:
    return int(redis.hget(metrics.HANDLER_JOBS, metrics.field(handler, "success")) or 0)


def test_a_handled_job_makes_two_round_trips(redis, runtime, round_trips):
    job = handler_job(redis, "quiet")
    round_trips.count = 0
    assert job.perform() == 1
    assert round_trips.count == 2
    assert attempts(redis, job) == 1
    assert handled.already_handled(redis, job.id)
    assert successes(redis, "quiet") == 1
    assert redis.hget(metrics.LATENCY, metrics.field("quiet", "sum")) is not None


def test_an_ordered_handlers_job_releases_its_order_in_the_same_round_trip(redis, runtime, round_trips):
    job = handler_job(redis, "ordered")
    [mark] = ordering.marks("ordered", job.args[1])
    redis.set(mark, job.id)  # as the dispatcher left it
    round_trips.count = 0
    assert job.perform() == 1
    assert round_trips.count == 2
    assert not redis.exists(mark)
    assert handled.already_handled(redis, job.id)
    assert successes(redis, "ordered") == 1


def test_a_job_run_again_after_its_end_makes_one_round_trip(redis, runtime, round_trips):
    job = handler_job(redis, "quiet")
    handled.mark_handled(redis, job.id, wait=0)
    round_trips.count = 0
    assert job.perform() == 0
    assert round_trips.count == 1
    assert attempts(redis, job) == 1
    assert successes(redis, "quiet") == 0


def test_a_failing_handler_makes_two_round_trips(redis, runtime, round_trips, monkeypatch):
    monkeypatch.setattr(runtime.handlers["quiet"], "fail", ConnectionError("the service is down"))
    job = handler_job(redis, "quiet")
    round_trips.count = 0
    with pytest.raises(ConnectionError):
        job.perform()
    assert round_trips.count == 2  # before the handler; the failure's counts and last error
    assert attempts(redis, job) == 1
    assert not handled.already_handled(redis, job.id)
    assert redis.hget(metrics.HANDLER_JOBS, metrics.field("quiet", "failure")) == b"1"


def test_a_job_of_a_gone_lane_makes_two_round_trips(redis, runtime, round_trips, monkeypatch):
    monkeypatch.setattr(runtime.handlers["quiet"], "fail", DestinationGone("410 Gone"))
    first = handler_job(redis, "quiet")
    with pytest.raises(DestinationGone):
        first.perform()
    assert gone.reason(redis, "quiet", "quiet")
    redis.delete(first.key)
    job = handler_job(redis, "quiet")
    round_trips.count = 0
    with pytest.raises(gone.StillGone):
        job.perform()
    assert round_trips.count == 2  # before the handler (which is not called); the failure's counts
    assert attempts(redis, job) == 1


def test_the_mark_and_what_goes_along_wait_for_a_redis_that_is_away(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    redis = Redis.from_url(server.url, socket_connect_timeout=0.5)
    try:
        server.stop()
        back = threading.Timer(0.5, server.start)
        back.start()
        started = time.monotonic()
        handled.mark_handled(redis, "handle-x", wait=10, along=lambda pipe: pipe.hincrby("counts", "success", 1))
        back.join()
        assert 0.4 < time.monotonic() - started < 10
        assert redis.exists(handled.key("handle-x"))
        assert redis.hget("counts", "success") == b"1"
    finally:
        server.stop()


def test_a_write_along_the_mark_that_fails_is_logged_not_retried(redis, caplog):
    redis.set("counts", "not a hash")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=handled.__name__):
        handled.mark_handled(redis, "handle-x", wait=10, along=lambda pipe: pipe.hincrby("counts", "success", 1))
    assert time.monotonic() - started < 1
    assert redis.exists(handled.key("handle-x"))
    assert "handle-x is marked handled, but a write along with the mark failed" in caplog.text


def burst(redis: Redis) -> None:
    """`smshooks worker --burst`'s loop, in this thread: every round trip it makes is counted."""
    queue = queue_for(redis, "smshooks")
    worker = Worker([queue], connection=redis, serializer=JSONSerializer)
    worker.stopping = threading.Event()
    worker.work(burst=True, with_scheduler=False)


def test_the_worker_moves_a_callback_into_its_handler_in_29_round_trips(redis, redis_server, round_trips):
    # RQ's own loop around the two jobs (dispatch, then the handler's) was 56 round trips beyond an
    # empty run, each a write that waits for Redis's fsync under `appendfsync always`: now RQ's
    # heartbeats go in one round trip (none within a second of the last: the lease renews the key),
    # an unchanged state is not written again, a finished dispatch is kept 10 s rather than deleted
    # (seven round trips), and the handler jobs' existence is checked in one round trip.
    settings = Settings.from_env({"REDIS_URL": redis_server.url, "HANDLERS": "quiet"})
    jobs.configure(jobs.Runtime(settings, {"quiet": Quiet()}, {}))
    burst(redis)  # registers and cleans up: what an empty run costs
    empty = round_trips.count
    round_trips.count = 0
    burst(redis)
    empty = min(empty, round_trips.count)
    event = Event("redoxygen", Kind.RECEIPT, Status.DELIVERED, "m1", utcnow())
    Ingest(redis, queue_for(redis, "smshooks"), 60).store([event])
    round_trips.count = 0
    burst(redis)
    made = round_trips.count - empty
    jobs.configure(None)
    assert successes(redis, "quiet") == 1, "the handler ran"
    assert redis.llen(INBOX) == 0
    # 29, and the dispatch lock's two scripts loaded on a fresh Redis's first use.
    assert made <= 31, made
