"""Redis for the web app, wired like flaskr's db.py: `init_app` plus a lazy getter, no connection at import."""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from webhooks.pipeline.queueing import Ingest, queue_for


def connect(url: str) -> Redis:
    """A client that fails fast: a callback waiting on a dead Redis should get its 503 quickly."""
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30, retry=Retry(NoBackoff(), 1)
    )


def init_app(app: Flask) -> None:
    app.extensions["smshooks.redis"] = None


def get_redis() -> Redis:
    client = current_app.extensions.get("smshooks.redis")
    if client is None:
        client = current_app.extensions["smshooks.redis"] = connect(current_app.config["SETTINGS"].redis_url)
    return client


def get_ingest() -> Ingest:
    ingest = current_app.extensions.get("smshooks.ingest")
    if ingest is None:
        settings = current_app.config["SETTINGS"]
        redis = get_redis()
        ingest = Ingest(redis, queue_for(redis, settings.queue_name), settings.dedupe_window)
        current_app.extensions["smshooks.ingest"] = ingest
    return ingest
