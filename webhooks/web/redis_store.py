"""Redis for the web app, wired like flaskr's db.py: `init_app` plus a lazy getter, no connection at import."""

from __future__ import annotations

import threading

from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from webhooks.config import Settings
from webhooks.pipeline.queueing import Ingest, queue_for
from webhooks.redis_connection import redis_client


def connect(settings: Settings) -> Redis:
    """A client that fails fast: a callback waiting on a dead Redis should get its 503 quickly."""
    return redis_client(
        settings.redis_url,
        settings.redis_ssl_cert_reqs,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )


_making = threading.Lock()  # two first requests at once (threads, greenlets) make one client, not two


def init_app(app: Flask) -> None:
    app.extensions["smshooks.redis"] = None
    app.extensions["smshooks.get_redis"] = get_redis  # for telemetry's live counts (layer 1 cannot import this)


def get_redis() -> Redis:
    client = current_app.extensions.get("smshooks.redis")
    if client is None:
        with _making:
            client = current_app.extensions.get("smshooks.redis")
            if client is None:
                client = current_app.extensions["smshooks.redis"] = connect(current_app.config["SETTINGS"])
    return client


def get_ingest() -> Ingest:
    ingest = current_app.extensions.get("smshooks.ingest")
    if ingest is None:
        settings = current_app.config["SETTINGS"]
        redis = get_redis()
        with _making:
            ingest = current_app.extensions.get("smshooks.ingest")
            if ingest is None:
                ingest = Ingest(
                    redis, queue_for(redis, settings.queue_name), settings.dedupe_window, settings.reply_match_window
                )
                current_app.extensions["smshooks.ingest"] = ingest
    return ingest
