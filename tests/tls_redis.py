"""A redis-server that speaks only TLS, with a self-signed certificate and a password, as Heroku Key-Value Store."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.conftest import free_port
from webhooks.redis_connection import redis_client

PASSWORD = "kvs-Password-for-TLS-tests-81c3"  # long enough that logs.py and redaction.py treat it as a secret


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate and its key, made here with the openssl command (as a platform's would be: no CA)."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=kvs.example.com"],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsRedisServer:
    """`--port 0`: nothing but TLS on `tls_port`; `url` is the rediss:// URL Heroku would give."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen | None = None

    def client(self) -> Redis:
        """A client that skips the check (the test's own view of the data)."""
        return redis_client(self.url, "none", socket_connect_timeout=2)

    def start(self) -> None:
        if shutil.which("redis-server") is None or shutil.which("openssl") is None:
            pytest.exit("redis-server and openssl are needed: run the tests with bin/test, which installs them", 2)
        cert, key = self_signed(self.workdir)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"]
            + ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
            + ["--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.workdir), "--logfile", str(self.log), "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"TLS redis-server exited: {self.log.read_text() if self.log.exists() else ''}")
            try:
                self.client().ping()
                return
            except RedisError:
                time.sleep(0.05)
        raise RuntimeError("TLS redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def tls_redis(workdir: Path) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
