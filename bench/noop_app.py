"""The baseline for the web benchmark: a Flask app that answers without parsing or touching Redis.

Served by gunicorn with the project's own settings (`-c python:webhooks.cli.gunicorn_conf`),
so the difference from `webhooks:create_app()` is what smshooks itself costs per callback.
"""

from __future__ import annotations

from flask import Flask, Response


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/noop")
    def noop() -> Response:
        # The body is deliberately not read: this is the floor of a Flask request under gunicorn.
        return Response("ok", mimetype="text/plain")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", mimetype="text/plain")  # readiness probe, same as the real app's

    return app
