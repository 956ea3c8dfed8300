"""GET /metrics: the web side's counters plus what workers left in Redis, in Prometheus' text format.

Everything read from Redis is read when Prometheus scrapes (one pipelined round trip,
plus one for the oldest job's age). When Redis does not answer, the web side's counters
are still served, with `smshooks_redis_up 0`: a scrape never fails because Redis did.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Response, current_app, request
from redis import Redis
from redis.exceptions import RedisError

from webhooks.pipeline.queueing import INBOX, queue_for, received_at
from webhooks.telemetry import metrics

from .endpoint import Responder
from .redis_store import get_redis


class WebCollector:
    """This process's own counters, for a server without PROMETHEUS_MULTIPROC_DIR (Flask's, tests)."""

    def collect(self) -> Iterator[Any]:
        for counter in metrics.web_counters():
            yield from counter.collect()


def _labels(raw: bytes) -> list[str]:
    return json.loads(raw)


def _age(timestamp: str | bytes | None, now: float) -> float:
    """Seconds since an ISO 8601 UTC time (RQ's `enqueued_at`, `...Z`); 0 when there is none."""
    if not timestamp:
        return 0.0
    try:
        text = timestamp.decode() if isinstance(timestamp, bytes) else timestamp
        return max(now - datetime.fromisoformat(text).timestamp(), 0.0)
    except ValueError:
        return 0.0


class RedisCollector:
    """Worker-side counters, the latency histogram and the queues, read from Redis at scrape time."""

    def __init__(self, redis: Redis, queue_name: str) -> None:
        self.redis = redis
        self.queue = queue_for(redis, queue_name)

    def _read(self) -> dict[str, Any]:
        queue = self.queue
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (metrics.HANDLER_JOBS, metrics.HANDLER_EVENTS, metrics.LATENCY, metrics.API_CALLS):
                pipe.hgetall(key)
            pipe.llen(INBOX)
            pipe.lindex(INBOX, 0)
            pipe.llen(queue.key)
            pipe.lindex(queue.key, 0)
            for registry in (queue.scheduled_job_registry, queue.started_job_registry, queue.failed_job_registry):
                pipe.zcard(registry.key)
            (jobs, events, latency, api, inbox, first_event, queued, first_job, scheduled, started, failed) = (
                pipe.execute()
            )
        enqueued_at = None
        if first_job:  # RQ pushes job ids on the right: index 0 is the one waiting longest
            enqueued_at = self.redis.hget(queue.job_class.key_for(first_job.decode()), "enqueued_at")
        return dict(
            jobs=jobs,
            events=events,
            latency=latency,
            api=api,
            inbox=inbox,
            received_at=received_at(first_event),  # None for an empty inbox or what is not our JSON
            queued=queued,
            enqueued_at=enqueued_at,
            states={"scheduled": scheduled, "started": started, "failed": failed},
        )

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        up = GaugeMetricFamily("smshooks_redis_up", "1 when Redis answered this scrape, 0 when it did not")
        try:
            data = self._read()
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = time.time()

        for name, key, doc in (
            (
                "smshooks_handler_jobs",
                "jobs",
                "Handler jobs finished, by outcome "
                "(success, retry: failed and retried later, failure: failed for good)",
            ),
            ("smshooks_handler_events", "events", "Events in those handler jobs, by outcome"),
        ):
            family = CounterMetricFamily(name, doc, labels=["handler", "outcome"])
            for raw, value in sorted(data[key].items()):
                family.add_metric(_labels(raw), int(value))
            yield family

        per_handler: dict[str, dict[str, float]] = defaultdict(dict)
        for raw, value in data["latency"].items():
            handler, le = _labels(raw)
            per_handler[handler][le] = float(value)
        histogram = HistogramMetricFamily(
            "smshooks_handled_latency_seconds",
            "Seconds from a callback's arrival to its handler finishing",
            labels=["handler"],
        )
        for handler, values in sorted(per_handler.items()):
            cumulative, buckets = 0.0, []
            for bound in metrics.LATENCY_BUCKETS:
                cumulative += values.get(repr(bound), 0.0)
                buckets.append((floatToGoString(bound), cumulative))
            histogram.add_metric([handler], buckets, sum_value=values.get("sum", 0.0))
        yield histogram

        api = CounterMetricFamily(
            "smshooks_api_calls",
            "Calls to providers' APIs, by endpoint and outcome",
            labels=["provider", "endpoint", "outcome"],
        )
        for raw, value in sorted(data["api"].items()):
            api.add_metric(_labels(raw), int(value))
        yield api

        depth = GaugeMetricFamily(
            "smshooks_queue_depth", "Waiting: events in the inbox, jobs in the RQ queue", labels=["queue"]
        )
        depth.add_metric(["inbox"], data["inbox"])
        depth.add_metric(["rq"], data["queued"])
        yield depth
        age = GaugeMetricFamily(
            "smshooks_queue_oldest_age_seconds",
            "Age of the oldest waiting event (inbox) or job (rq); 0 when empty",
            labels=["queue"],
        )
        received = data["received_at"]
        age.add_metric(["inbox"], 0.0 if received is None else max(now - received, 0.0))
        age.add_metric(["rq"], _age(data["enqueued_at"], now))
        yield age
        jobs = GaugeMetricFamily(
            "smshooks_rq_jobs",
            "RQ jobs scheduled (retries waiting), started, or failed for good (kept for inspection)",
            labels=["state"],
        )
        for state, count in data["states"].items():
            jobs.add_metric([state], count)
        yield jobs


def serve() -> Response:
    """The /metrics view: the same secret as the callbacks (?token= or basic-auth password)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.values import MutexValue, ValueClass

    settings = current_app.config["SETTINGS"]
    if (refused := Responder().refuse(settings, action="scrape")) is not None:  # as the callbacks
        return refused
    registry = CollectorRegistry(auto_describe=False)
    if ValueClass is MutexValue:
        registry.register(WebCollector())
    else:
        MultiProcessCollector(registry)  # every gunicorn worker's files, summed
    registry.register(RedisCollector(get_redis(), settings.queue_name))
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)
