"""Procfile.dev under honcho: web and worker on a laptop, without the release step that would stop them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import requests
from sqlalchemy.exc import OperationalError

from tests.conftest import ROOT, SECRET, free_port, process_env, processes, venv_bin, wait_for
from tests.processes import rows, wait_until_up
from tests.redoxygen_samples import MESSAGE_1


def procfile(name: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line):  # honcho's and foreman's reading
            found[match.group(1)] = match.group(2)
    return found


def test_procfile_dev_is_the_procfile_without_release():
    deployed, dev = procfile("Procfile"), procfile("Procfile.dev")
    assert "release" in deployed and set(dev) == {"web", "worker"}
    # `exec`: honcho runs each line with sh (dash), which would stand between its SIGTERM and the process.
    assert dev["web"] == f"exec {deployed['web']}"
    # The release step (the migration) runs before the worker instead, then the worker itself.
    assert dev["worker"] == f"{deployed['release']} && exec {deployed['worker']}"


def descendants(pid: int) -> set[int]:
    table = processes()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, (pp, _) in table.items() if pp == parent}
        todo.extend(children - found)
        found |= children
    return found


def test_honcho_runs_procfile_dev_end_to_end_and_stops_cleanly(tmp_path: Path, redis, redis_server):
    honcho = venv_bin("honcho")
    assert Path(honcho).exists(), "honcho is missing: bin/setup test installs the test extra, which has it"
    port = free_port()
    database = tmp_path / "dev.db"  # not created: the worker's line migrates it first
    env = process_env(
        {
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": f"sqlite:///{database}",
            "WEBHOOK_SECRET": SECRET,
            "HOST": "127.0.0.1",
            # As in a shell with the virtualenv active: the Procfile names `gunicorn` and `smshooks`.
            "PATH": f"{Path(honcho).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    empty_env_file = tmp_path / ".env"  # never the developer's own .env
    empty_env_file.write_text("")
    command = [honcho, "start", "-f", str(ROOT / "Procfile.dev"), "-e", str(empty_env_file), "-p", str(port)]
    with open(tmp_path / "honcho.log", "wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"  # honcho gives the first process (web) PORT=<-p>
        wait_until_up(base, [proc])
        answer = requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=5)
        assert answer.status_code == 200, answer.text
        db = f"sqlite:///{database}"

        def stored() -> bool:
            try:
                return rows(db, "select count(*) from sms_events") == [(1,)]
            except OperationalError:  # the worker's release step has made the file, not yet the tables
                return False

        wait_for(stored, timeout=60)
        children = descendants(proc.pid)
        assert len(children) >= 4  # gunicorn's master and workers, the worker and its scheduler
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 130  # honcho's answer to SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = (tmp_path / "honcho.log").read_text()
    # Each stopped on the SIGTERM honcho sent, within its 5 s before SIGKILL.
    assert "web.1 stopped (rc=0)" in output, output
    assert "worker.1 stopped (rc=0)" in output, output
    assert "release" not in output
    assert SECRET not in output
    wait_for(lambda: not (descendants(proc.pid) | children) & set(processes()), timeout=10)
