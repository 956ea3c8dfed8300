"""The real processes tests start (gunicorn, `smshooks worker`) and reading what they wrote to the database."""

from __future__ import annotations

import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from handlers.database import init_db
from tests.conftest import ROOT, SECRET, free_port, process_env, venv_bin, wait_for
from webhooks.config import normalize_database_url


@contextmanager
def running(*commands: list[str], env: dict[str, str], cwd: Path = ROOT):
    # Each in a process group of its own, as a shell would start it: a test can signal the group.
    procs = [
        subprocess.Popen(
            c, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, process_group=0
        )
        for c in commands
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def gunicorn(port: int) -> list[str]:
    return [
        venv_bin("gunicorn"),
        "-c",
        "python:webhooks.cli.gunicorn_conf",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "webhooks:create_app()",
    ]


WORKER = [venv_bin("smshooks"), "worker"]


def service(redis_server, database_url: str, settings: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """For gunicorn and workers on this Redis and database (migrated here), with the tests' secret:
    a free port, its base URL, and their environment (`settings` added)."""
    init_db(database_url)
    port = free_port()
    env = process_env(
        {"REDIS_URL": redis_server.url, "DATABASE_URL": database_url, "WEBHOOK_SECRET": SECRET, **(settings or {})}
    )
    return port, f"http://127.0.0.1:{port}", env


def wait_until_up(base: str, procs) -> None:
    def up():
        for p in procs:
            assert p.poll() is None, f"{p.args[0]} exited: {p.stdout.read()}"
        try:
            return requests.get(f"{base}/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # refused, or a read timeout while a loaded machine boots it
            return False

    wait_for(up, timeout=60)


def rows(database_url: str, sql: str) -> list[tuple]:
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()
