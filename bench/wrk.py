"""wrk, the load generator the benchmarks share: installing it, running a Lua script, reading its output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non200: int
    socket_errors: str


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _wrk_ms(output: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    if not match:
        raise RuntimeError(f"no {pct}% latency in wrk output:\n{output}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    non200 = re.search(r"^non200 responses: (\d+)", output, re.M)  # from the script's done() (receipt.lua, mixed.lua)
    errors = re.search(r"^\s*Socket errors: (.*)$", output, re.M)
    if not (rps and total and non200):
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return WrkResult(
        float(rps.group(1)),
        _wrk_ms(output, "50"),
        _wrk_ms(output, "99"),
        int(total.group(1)),
        int(non200.group(1)),
        errors.group(1) if errors else "none",
    )


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("wrk is missing: apt-get install -y wrk", flush=True)
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, timeout=300).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=300)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True, timeout=300)
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk is still missing after apt-get install")
    return wrk


def run_script(wrk: str, args: list[str], script: Path, url: str, seconds: int, *script_args: str) -> WrkResult:
    """One wrk run of `script` against `url` for `seconds`, after `--` the script's own arguments."""
    cmd = [wrk, *args, f"-d{seconds}s", "--latency", "--timeout", "5s", "-s", str(script), url, "--", *script_args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)
