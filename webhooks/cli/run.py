"""`smshooks run`: the whole service on one machine — a Redis it owns, SQLite, web and worker.

Redis is Debian's `redis-server`, started here on a private Unix socket with the
append-only file on (`appendfsync always`), so an acknowledged event survives a
Redis restart, a Redis crash and a machine crash. Each child is restarted if it dies, up to a crash loop.

Without WEBHOOK_SECRET it makes one on the first run and keeps it in SMSHOOKS_HOME (`webhook_secret`,
mode 0600), so the endpoints are never open and the URLs it prints stay the same from run to run.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis.exceptions import RedisError

from handlers.database import init_db
from handlers.registry import check
from webhooks.config import MIN_SECRET_LENGTH, ConfigError, Settings
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.redis_connection import certificate_problem, redis_client
from webhooks.telemetry.redaction import URL_PASSWORD

# What `smshooks run` tells the user to register, by provider (docs/providers.md, "Endpoints").
ROUTES = (
    ("Red Oxygen ReceiptCallbackURL", "/redoxygen/receipt"),
    ("Red Oxygen ReplyCallbackURL", "/redoxygen/reply"),
    ("SMSC handler", "/smsc/callback"),
    ("OGANGI notifications", "/ogangi/status"),
    ("Digitaleo ping (it appends ?sms_id=)", "/digitaleo/ping"),
    ("provider emails (relay)", "/inbound/email"),
    ("provider emails (Mailgun, raw MIME)", "/inbound/email/mime"),
)
SECRET_FILE = "webhook_secret"  # in SMSHOOKS_HOME: the WEBHOOK_SECRET made on the first run
# What an acknowledged event needs from Redis: every write in the append-only file and on disk
# (fsync) before Redis answers, so a 200 survives a crash of Redis and of the machine; no RDB
# snapshots. `everysec` survives a Redis crash too but can lose the last second on a machine
# crash, for twice the ingest rate (docs/operations.md, "Faults"). bench/faults starts its Redis with these.
PERSISTENCE = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]


def _socket_path(home: Path) -> Path:
    path = home / "redis.sock"
    if len(str(path)) < 100:  # Unix socket paths are limited to ~108 bytes
        return path
    return Path("/tmp") / f"smshooks-{hashlib.sha1(str(home).encode()).hexdigest()[:12]}.sock"


def persistence(appendfsync: str | None) -> list[str]:
    """PERSISTENCE, with REDIS_APPENDFSYNC's policy when one is set (`always` or `everysec`)."""
    if appendfsync in (None, ""):
        return list(PERSISTENCE)
    if appendfsync not in ("always", "everysec"):
        raise ConfigError(f"REDIS_APPENDFSYNC must be 'always' or 'everysec', got {appendfsync!r}")
    args = list(PERSISTENCE)
    args[args.index("--appendfsync") + 1] = appendfsync
    return args


def redis_command(home: Path, sock: Path, appendfsync: str | None = None) -> list[str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(
            "redis-server is not installed: run bin/serve (it installs it), "
            "or `apt-get install redis-server`, or set REDIS_URL"
        )
    return [
        server,
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--dir",
        str(home),
        *persistence(appendfsync),
        "--daemonize",
        "no",
        "--logfile",
        str(home / "redis.log"),
    ]


def kept_secret(home: Path) -> str:
    """The WEBHOOK_SECRET kept in `home`: made (mode 0600) the first time, read back every time after."""
    path = home / SECRET_FILE
    if not path.exists():
        # mkstemp makes the file 0600 from the start; link() never replaces one that a second
        # `smshooks run`, starting at the same moment, has just made: both then use that one.
        fd, draft = tempfile.mkstemp(dir=home, prefix=f".{SECRET_FILE}-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(draft)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # copied or restored with looser rights: only its owner reads it
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH or "," in secret:
        raise ConfigError(
            f"{path} must hold one secret of at least {MIN_SECRET_LENGTH} characters; "
            "delete it and smshooks run makes a new one (then register the new URLs)"
        )
    return secret


def _check_port_free(host: str, port: int) -> None:
    """Say so now, rather than let gunicorn fail to bind again and again."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            message = f"smshooks: port {port} on {host} is in use ({err.strerror}); set PORT to a free one"
            raise SystemExit(message) from None


def _wait_for_redis(url: str, proc: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"redis-server exited with {proc.returncode}; see its log in SMSHOOKS_HOME")
        try:
            redis_client(url, socket_connect_timeout=1).ping()  # our own, on a Unix socket: no TLS
            return
        except RedisError:
            time.sleep(0.1)
    raise SystemExit("redis-server did not answer within 20 s")


def _check_certificate(settings: Settings) -> None:
    """A given REDIS_URL whose TLS certificate is refused needs a setting, not a retry: say so before starting."""
    try:
        redis_client(settings.redis_url, settings.redis_ssl_cert_reqs, socket_connect_timeout=2).ping()
    except RedisError as err:
        problem = certificate_problem(err)
        if problem is not None:
            raise ConfigError(problem) from None
        # Any other failure is an outage: the web answers 503 and the worker waits for Redis to return.


class Supervisor:
    """Starts children, restarts any that die, and stops them all (Redis last) on SIGINT/SIGTERM."""

    MAX_RESTARTS = 5  # within RESTART_WINDOW seconds: a crash loop (port taken, bad setting), not bad luck
    RESTART_WINDOW = 60.0

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.commands: dict[str, list[str]] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, list[float]] = {}
        self.stopping = False

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        self.commands[name] = command
        # A process group of its own: Ctrl-C (or a signal to our group) reaches only us, and we
        # stop the children in order (web and worker first, Redis last) instead of all at once.
        self.procs[name] = subprocess.Popen(command, env=self.env, process_group=0)
        return self.procs[name]

    def watch(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: setattr(self, "stopping", True))
        while not self.stopping:
            time.sleep(0.5)
            for name, proc in list(self.procs.items()):
                if proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                recent = [t for t in self.restarts.get(name, []) if now - t < self.RESTART_WINDOW] + [now]
                self.restarts[name] = recent
                if len(recent) > self.MAX_RESTARTS:
                    print(
                        f"smshooks: {name} keeps exiting (last code {proc.returncode}); stopping everything",
                        file=sys.stderr,
                    )
                    self.stop()
                    return 1
                print(f"smshooks: {name} exited with {proc.returncode}; restarting", file=sys.stderr)
                time.sleep(1)
                self.start(name, self.commands[name])
        return self.stop()

    def stop(self) -> int:
        # Web and worker first (the worker finishes its job), Redis last so it can write its AOF.
        for name in sorted(self.procs, key=lambda n: n == "redis"):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    proc.kill()
        return 0


def run(env: dict[str, str]) -> int:
    home = Path(env.get("SMSHOOKS_HOME") or ".smshooks").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(env)
    kept = not env.get("WEBHOOK_SECRET")  # safe by default: never open endpoints on the first run
    if kept:
        env["WEBHOOK_SECRET"] = kept_secret(home)
    env.setdefault("DATABASE_URL", f"sqlite:///{Path('smshooks.db').resolve()}")
    env.setdefault("PORT", "8000")
    own_redis = not env.get("REDIS_URL")
    if own_redis:
        sock = _socket_path(home)
        env["REDIS_URL"] = f"unix://{sock}"
    # Everything that can be checked is checked before anything is started.
    settings = Settings.from_env(env)
    DigitaleoConfig.from_env(env)  # a bad DIGITALEO_* raises here, not in the worker once it runs
    check(settings.handlers)
    if not own_redis:
        _check_certificate(settings)
    redis_cmd = redis_command(home, sock, env.get("REDIS_APPENDFSYNC")) if own_redis else []
    _check_port_free(env.get("HOST") or "0.0.0.0", int(env["PORT"]))
    supervisor = Supervisor(env)
    try:
        if own_redis:
            _wait_for_redis(env["REDIS_URL"], supervisor.start("redis", redis_cmd))
        if "database" in settings.handlers:
            init_db(settings.database_url)
    except BaseException:  # SystemExit from _wait_for_redis too: never leave our Redis running
        supervisor.stop()
        raise
    python = sys.executable
    supervisor.start(
        "web", [python, "-m", "gunicorn", "-c", "python:webhooks.cli.gunicorn_conf", "webhooks:create_app()"]
    )
    supervisor.start("worker", [python, "-m", "webhooks.cli", "worker"])
    base = (env.get("PUBLIC_URL") or f"http://localhost:{env['PORT']}").rstrip("/")
    # A secret of its own is shown, to be pasted at the provider; one given in WEBHOOK_SECRET never is.
    token = "?token=" + (env["WEBHOOK_SECRET"] if kept else "<WEBHOOK_SECRET>")
    print("\nsmshooks is running. Register these URLs at the provider:")
    for what, route in ROUTES:
        print(f"  {what:<38} {base}{route}{token}")
    if kept:
        print(f"The secret in them is kept in {home / SECRET_FILE}; set WEBHOOK_SECRET to use one of your own.")
    redis_url = URL_PASSWORD.sub(r"\g<head>***", env["REDIS_URL"])  # a given URL carries its password
    print(f"Redis: {redis_url}   database: {settings.database_url}   Ctrl-C stops everything.\n", flush=True)
    return supervisor.watch()
