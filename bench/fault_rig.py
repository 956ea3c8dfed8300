"""The processes a fault scenario runs and breaks: Redis, the Procfile's web and worker, a TCP proxy.

Built on the tests' own helpers (tests/conftest.py: RedisServer, process_env, free_port, wait_for),
so bench/faults and tests/test_faults.py start processes exactly as the rest of the suite does.
Each child writes to a log file (a pipe nobody reads would block a busy worker) and runs in a
process group of its own, so a SIGKILL reaches the worker and its scheduler together.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import socket
import subprocess
import threading
from pathlib import Path

import requests
from redis import Redis

from tests.conftest import ROOT, SECRET, RedisServer, free_port, process_env, processes, venv_bin, wait_for
from webhooks.cli.run import PERSISTENCE

__all__ = ["ROOT", "SECRET", "Stack", "TcpProxy", "free_port", "wait_for"]


def procfile_command(kind: str) -> list[str]:
    """The Procfile's command for `web` or `worker`, with the project's venv executables."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            argv = shlex.split(command)
            return [venv_bin(argv[0]), *argv[1:]]
    raise LookupError(f"no {kind!r} line in the Procfile")


class Stack:
    """A private Redis with the embedded default's persistence, gunicorn and workers, all on loopback."""

    def __init__(
        self, workdir: Path, env: dict[str, str], web_concurrency: int = 2, appendfsync: str | None = None
    ) -> None:
        self.workdir = workdir
        persistence = list(PERSISTENCE)
        if appendfsync:  # to measure another policy than the embedded default's
            persistence[persistence.index("--appendfsync") + 1] = appendfsync
        self.redis_server = RedisServer(workdir, args=tuple(persistence))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = process_env(
            {
                "REDIS_URL": self.redis_server.url,
                "WEBHOOK_SECRET": SECRET,
                "PORT": str(self.port),
                "HOST": "127.0.0.1",
                "WEB_CONCURRENCY": str(web_concurrency),
                **env,
            }
        )
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def redis(self) -> Redis:
        return Redis.from_url(self.redis_server.url, socket_connect_timeout=2, socket_timeout=10)

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                command,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        self.procs[name] = proc
        return proc

    def start_web(self) -> None:
        web = self.start("web", procfile_command("web"))

        def up() -> bool:
            assert web.poll() is None, f"web exited with {web.returncode}; see {self.workdir / 'web.log'}"
            try:
                return requests.get(f"{self.base}/healthz", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(up, timeout=60, interval=0.2)

    def start_worker(self, name: str = "worker") -> None:
        self.start(name, procfile_command("worker"))
        wait_for(lambda: len(self.redis.smembers("rq:workers")) >= 1, timeout=60, interval=0.2)

    def kill(self, name: str) -> None:
        """SIGKILL the process and its group (an RQ worker's scheduler too): a crash, not a shutdown."""
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def web_workers(self) -> list[int]:
        """The gunicorn worker processes (children of the master)."""
        master = self.procs["web"].pid
        return sorted(pid for pid, (parent, _) in processes().items() if parent == master)

    def start_half_request(self, path: str, body: str) -> tuple[socket.socket, int]:
        """Send a callback's headers and half its body; the socket and the gunicorn worker now stuck in it."""
        client = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        head = (
            f"POST {path}?token={SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        client.sendall(head.encode() + body[: len(body) // 2].encode())
        client_port = client.getsockname()[1]
        worker = wait_for(lambda: self._worker_with_peer(client_port), timeout=10, interval=0.05)
        return client, worker

    def _worker_with_peer(self, client_port: int) -> int | None:
        """The gunicorn worker holding the server side of the connection from `client_port` (read from /proc)."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if local_port == self.port and remote_port == client_port:
                inodes.add(f"socket:[{fields[9]}]")
        for pid in self.web_workers():
            try:
                if inodes & {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}:
                    return pid
            except OSError:
                continue
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        self.redis_server.stop()

    def send(self, mix: str, rate: float, seconds: float, first_id: int) -> subprocess.Popen:
        """Start the sender process (bench.fault_sender); `sender_result` reads what it printed."""
        command = [
            venv_bin("python"),
            "-m",
            "bench.fault_sender",
            self.base,
            "--secret",
            SECRET,
            "--mix",
            mix,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--first-id",
            str(first_id),
        ]
        return subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, text=True)

    @staticmethod
    def sender_result(sender: subprocess.Popen, timeout: float) -> dict:
        output, _ = sender.communicate(timeout=timeout)
        if sender.returncode != 0:
            raise RuntimeError(f"the sender exited with {sender.returncode}")
        return json.loads(output.strip().splitlines()[-1])


class TcpProxy:
    """A TCP forwarder to `upstream` that can be stopped (connections cut, port refusing) and restarted."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """The service is down: refuse new connections and cut the open ones."""
        with self._lock:
            if self._listener is not None:
                try:  # close() alone leaves a thread blocked in accept() still accepting
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with selectors.DefaultSelector() as sel:
            for sock in peers:
                sock.setblocking(True)
                sel.register(sock, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in sel.select(timeout=1):
                        data = key.fileobj.recv(65536)
                        if not data:
                            raise ConnectionError("closed")
                        peers[key.fileobj].sendall(data)
                    if a.fileno() < 0 or b.fileno() < 0:
                        return
            except (OSError, ValueError):
                pass
            finally:
                with self._lock:
                    self._sockets -= {a, b}
                for sock in peers:
                    sock.close()
