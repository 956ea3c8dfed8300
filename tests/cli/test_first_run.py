"""`smshooks run` (bin/serve) with no WEBHOOK_SECRET: it makes one, keeps it in SMSHOOKS_HOME, prints the URLs."""

from __future__ import annotations

import os
import re
import signal
import stat
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, process_env, venv_bin
from tests.processes import running, wait_until_up
from tests.redoxygen_samples import MESSAGE_1
from webhooks.cli.run import ROUTES, SECRET_FILE, kept_secret
from webhooks.config import ConfigError


def first_run(tmp_path: Path, home: Path) -> tuple[str, str]:
    """One `smshooks run` without WEBHOOK_SECRET: (what it printed, the secret that worked)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env({"PORT": str(port), "HOST": "127.0.0.1", "SMSHOOKS_HOME": str(home)})
    for name in ("WEBHOOK_SECRET", "REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
    with running([venv_bin("smshooks"), "run"], env=env, cwd=tmp_path) as [proc]:
        wait_until_up(base, [proc])
        secret = (home / SECRET_FILE).read_text().strip()
        assert requests.post(f"{base}/redoxygen/receipt", json=MESSAGE_1, timeout=5).status_code == 401
        assert requests.post(f"{base}/redoxygen/receipt?token={secret}", json=MESSAGE_1, timeout=5).status_code == 200
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0, output[-3000:]
    return output, secret


def test_smshooks_run_makes_a_secret_keeps_it_and_prints_the_urls_with_it(tmp_path):
    home = tmp_path / "home"
    output, secret = first_run(tmp_path, home)
    assert len(secret) >= 16
    assert stat.S_IMODE((home / SECRET_FILE).stat().st_mode) == 0o600
    printed = {line.split()[-1] for line in output.splitlines() if "?token=" in line}
    base = re.search(r"(http://localhost:\d+)/redoxygen/receipt", output).group(1)
    assert printed == {f"{base}{route}?token={secret}" for _, route in ROUTES}  # one URL per provider, to paste
    assert f"kept in {home / SECRET_FILE}" in output
    assert "WEBHOOK_SECRET is not set" not in output

    again, same = first_run(tmp_path, home)  # the next run: the same secret, so the same URLs
    assert same == secret
    assert {line.split()[-1].split("?")[1] for line in again.splitlines() if "?token=" in line} == {f"token={secret}"}


def test_the_kept_secret_is_private_and_checked(tmp_path):
    secret = kept_secret(tmp_path)
    assert kept_secret(tmp_path) == secret
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no draft left behind
    (tmp_path / SECRET_FILE).chmod(0o644)
    assert kept_secret(tmp_path) == secret
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    (tmp_path / SECRET_FILE).write_text("short\n")
    with pytest.raises(ConfigError, match=f"{tmp_path / SECRET_FILE} must hold one secret of at least 16"):
        kept_secret(tmp_path)
