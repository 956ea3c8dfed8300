"""Fixtures on real parts: a private redis-server per session, SQLite files, PostgreSQL when it answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from webhooks import create_app
from webhooks.pipeline import jobs
from webhooks.pipeline.queueing import queue_for

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-Token_for-tests"
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of the tests' own, so tests can kill and restart it without touching anyone else's."""

    def __init__(self, workdir: Path, args: tuple[str, ...] = ("--save", "", "--appendonly", "no")) -> None:
        self.workdir = workdir
        self.args = list(args)  # persistence: none for the tests; bench/faults passes the embedded default's
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.exit("redis-server is not installed: run the tests with bin/test, which installs it", 2)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *self.args,
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except RedisError:
                time.sleep(0.05)
        raise RuntimeError("test redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(autouse=True)
def _no_sentry_client_left_behind() -> Iterator[None]:
    """A test whose create_app started Sentry leaves no client behind pointed at its stopped stand-in.

    Such a client would keep retrying to a closed port, and urllib3's warnings about it would land in
    whatever later test happens to be capturing logs.
    """
    yield
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and sentry_sdk.get_client().dsn:
        sentry_sdk.get_client().close(timeout=0)
        sentry_sdk.init()  # no DSN: nothing is sent from here on


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisServer) -> Redis:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()  # a test killed it
    client = Redis.from_url(redis_server.url)
    client.flushall()
    return client


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'smshooks.db'}"


def postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture
def postgres_database() -> Iterator[Callable[[], str]]:
    """Makes empty PostgreSQL databases of the test's own on PG_URL's server, dropped after it; or a skip.

    Never PG_URL's database itself: other test runs and benches on this server use it at the same time.
    """
    if not postgres_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = f"smshooks_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"  # the pid says which run left one behind
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))

    yield make
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
        for name in made:  # FORCE: a worker the test started may still hold a connection
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: Callable[[], str]) -> str:
    """A PostgreSQL database of this test's own, with no tables (a skip when none answers): one per test."""
    return postgres_database()


@pytest.fixture
def env(redis: Redis, redis_server: RedisServer, sqlite_url: str) -> dict[str, str]:
    """The environment a deployment would have, pointing at the test Redis and a fresh SQLite file."""
    from handlers.database import init_db

    init_db(sqlite_url)
    return {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": sqlite_url,
        "WEBHOOK_SECRET": SECRET,
        "HANDLERS": "database",
        "RETRY_INTERVALS": "0,0",
    }


@pytest.fixture
def app(env: dict[str, str]):
    return create_app(env)


@pytest.fixture
def client(app):
    return app.test_client()


def run_worker(env: dict[str, str], max_rounds: int = 20) -> jobs.Runtime:
    """Run RQ in this process until the queue and the inbox are empty (burst SimpleWorker).

    The runtime is built as `smshooks worker` builds it (per-handler settings, fallback,
    broken handlers reported by name), and returned for tests to look at.
    """
    runtime = jobs.Runtime.from_env({**os.environ, **env})
    jobs.configure(runtime)
    redis = Redis.from_url(runtime.settings.redis_url)
    queue = queue_for(redis, runtime.settings.queue_name)
    try:
        for _ in range(max_rounds):
            SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True, with_scheduler=False)
            if queue.count == 0 and not redis.llen("smshooks:inbox"):
                break
    finally:
        jobs.configure(None)
        runtime.close()
    return runtime


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    """Poll until `predicate()` is truthy; its last value, or an AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s"
            return value
        time.sleep(interval)


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child process (gunicorn, worker), importing the tests' helper handlers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_", "HANDLERS"))}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def processes() -> dict[int, tuple[int, str]]:
    """Every process as pid -> (parent pid, command line), read from /proc (no procps needed)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it exited while we looked
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (parent, cmdline)
    return found


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def unique() -> str:
    return uuid.uuid4().hex[:12]
