"""The build a platform runs, kept true: uv.lock matches pyproject.toml, Heroku's Python buildpack accepts
the tree, the lock installs as the buildpack installs it and gives the Procfile's commands, app.json agrees.

The buildpack (heroku/heroku-buildpack-python) takes exactly one of requirements.txt, poetry.lock, uv.lock
and Pipfile.lock at the root, wants .python-version when it is uv.lock, and then runs
`uv sync --locked --no-default-groups --compile-bytecode` into its Python's own environment
(UV_PROJECT_ENVIRONMENT), never letting uv download a Python. Everything here runs offline: bin/setup has
just installed from the same lock, so uv's cache holds what a sync needs.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT
from webhooks.config import Settings, cert_reqs_setting

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
PYTHON_VERSION = (ROOT / ".python-version").read_text().strip()
PROCFILE = dict(
    (name.strip(), command.strip())
    for name, command in (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
)
APP_JSON = ROOT / "app.json"
PACKAGE_MANAGER_FILES = ("requirements.txt", "poetry.lock", "uv.lock", "Pipfile.lock", "Pipfile")
# What a copy of the tree leaves out: environments, caches, local state (none of it is in git either).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", ".smshooks", "smshooks.db*", "*.egg-info", "build", "__pycache__", ".*_cache", ".hypothesis"
)


def uv() -> str:
    """The uv bin/setup installs into .venv (bin/test-pythons' environments use that one too)."""
    for candidate in (Path(sys.executable).parent / "uv", ROOT / ".venv" / "bin" / "uv"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("uv") or pytest.fail("uv is not installed: bin/setup installs it into .venv")


def uv_env(**extra: str) -> dict[str, str]:
    """The environment uv runs in: never a Python download, no colours, no project environment of the caller's."""
    env = {k: v for k, v in os.environ.items() if k not in ("UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV")}
    return {**env, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", **extra}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_named(version: str) -> str | None:
    """An interpreter for `3.13`: pyenv's newest 3.13.x, else python3.13 on PATH; None if there is none."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = sorted(
        Path(pyenv_root, "versions").glob(f"{version}.*/bin/python{version}"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    candidates = [str(p) for p in reversed(found)] + [c for c in [shutil.which(f"python{version}")] if c]
    for candidate in candidates:
        if subprocess.run([candidate, "-c", ""], capture_output=True, timeout=30).returncode == 0:
            return candidate
    return None


def python_or_skip(version: str) -> str:
    """The interpreter for `version`; skipped where it is not installed, a failure on CI (which has them all)."""
    python = python_named(version)
    if python is None:
        message = f"Python {version} (.python-version) is not installed here: pyenv install {version}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def lock_closure(roots: list[dict]) -> set[str]:
    """Every package the lock could install for these dependencies, on any platform (markers not evaluated)."""
    packages = {p["name"]: p for p in LOCK["package"]}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        dep = todo.pop()
        package = packages[dep["name"]]
        todo += [d for extra in dep.get("extra", []) for d in package.get("optional-dependencies", {})[extra]]
        if dep["name"] not in seen:
            seen.add(dep["name"])
            todo += package.get("dependencies", [])
    return seen


def lock_check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [uv(), "lock", "--check", "--offline", "--python", sys.executable],
        cwd=tree,
        env=uv_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """What `uv lock` reads, copied: pyproject.toml and uv.lock (and the files they name)."""
    for name in ("pyproject.toml", "uv.lock", "README.md", ".python-version"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_lock_matches_pyproject(project):
    result = lock_check(project)
    assert result.returncode == 0, (
        "uv.lock no longer matches pyproject.toml: run `.venv/bin/uv lock` and commit uv.lock\n" + result.stderr
    )


def test_the_lock_fetches_from_pypi_only():
    # A lock written against a mirror or a local index (UV_INDEX_URL, uv.toml) would not build elsewhere.
    sources = {json.dumps(p["source"], sort_keys=True) for p in LOCK["package"]}
    assert sources == {'{"registry": "https://pypi.org/simple"}', '{"editable": "."}'}
    files = [f for p in LOCK["package"] for f in [*p.get("wheels", []), *([p["sdist"]] if "sdist" in p else [])]]
    assert files and all(f["url"].startswith("https://files.pythonhosted.org/") and f["hash"] for f in files)


def _add_dependency(text: str) -> str:
    return text.replace("dependencies = [\n", 'dependencies = [\n    "six>=1.16",\n', 1)


def _add_test_dependency(text: str) -> str:
    return text.replace("test = [\n", 'test = [\n    "six>=1.16",\n', 1)


def _exclude_the_locked_flask(text: str) -> str:
    locked = next(p["version"] for p in LOCK["package"] if p["name"] == "flask")
    return re.sub(r'"flask[^"]*"', f'"flask>{locked}"', text, count=1)


@pytest.mark.parametrize("drift", [_add_dependency, _add_test_dependency, _exclude_the_locked_flask])
def test_a_lock_that_no_longer_matches_fails_the_check(project, drift):
    before = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(drift(before))
    assert (project / "pyproject.toml").read_text() != before
    result = lock_check(project)
    assert result.returncode != 0, result.stdout + result.stderr
    # With uv's index pages cached it says so (or that nothing satisfies the new range); without them
    # it tried to resolve again, which a matching lock never needs, and the network is off.
    reasons = ("needs to be updated", "network was disabled", "No solution found")
    assert any(reason in result.stderr for reason in reasons), result.stderr


def test_the_buildpack_finds_exactly_one_package_manager_file():
    assert [name for name in PACKAGE_MANAGER_FILES if (ROOT / name).exists()] == ["uv.lock"]
    # and git keeps the files the buildpack reads
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()]
    for name in ("uv.lock", ".python-version", "Procfile", "app.json"):
        assert not [pattern for pattern in ignored if fnmatch.fnmatch(name, pattern.rstrip("/"))], name
    assert not (ROOT / ".slugignore").exists() or "uv.lock" not in (ROOT / ".slugignore").read_text()


def test_python_version_names_a_python_the_project_is_tested_on():
    # major.minor only, as the buildpack recommends: each build then gets the newest patch release
    assert re.fullmatch(r"3\.\d+", PYTHON_VERSION), PYTHON_VERSION
    floor = re.fullmatch(r">=3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert floor, PYPROJECT["project"]["requires-python"]
    assert int(PYTHON_VERSION.split(".")[1]) >= int(floor.group(1))
    # bin/test-pythons runs the suite on every Python from the floor to the newest installed, on CI too
    assert "requires-python" in (ROOT / "bin" / "test-pythons").read_text()
    assert "bin/test-pythons" in (ROOT / ".ci" / "run").read_text()
    python_or_skip(PYTHON_VERSION)


def test_the_buildpacks_install_gives_the_procfiles_commands(tmp_path):
    python = python_or_skip(PYTHON_VERSION)
    build = tmp_path / "build"  # the buildpack's build directory: a clean checkout
    shutil.copytree(ROOT, build, ignore=NOT_SOURCE)
    python_home = tmp_path / "python"  # the buildpack's Python, empty of packages
    subprocess.run([python, "-m", "venv", "--without-pip", str(python_home)], check=True, timeout=120)
    env = uv_env(UV_PROJECT_ENVIRONMENT=str(python_home), UV_NO_MANAGED_PYTHON="1")
    heroku = [uv(), "sync", "--locked", "--no-default-groups", "--compile-bytecode", "--no-progress"]
    result = subprocess.run([*heroku, "--offline"], cwd=build, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and "network was disabled" in result.stderr:
        # uv's cache lacks a wheel for this Python (bin/setup installed .venv with another one)
        result = subprocess.run(heroku, cwd=build, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr

    bin_dir = python_home / "bin"
    version = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.stdout.strip() == PYTHON_VERSION  # the environment is the Python .python-version names
    for name, command in PROCFILE.items():
        assert (bin_dir / command.split()[0]).exists(), f"the Procfile's {name}: has no {command.split()[0]}"

    listed = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.metadata as m, json, webhooks; "
            "print(json.dumps([webhooks.__file__, {d.metadata['Name']: d.version for d in m.distributions()}]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    source, installed = json.loads(listed.stdout)
    installed = {norm(name): version for name, version in installed.items()}
    assert Path(source).is_relative_to(build)  # the project itself, editable, from the build directory
    locked = {p["name"]: p["version"] for p in LOCK["package"]}
    project = next(p for p in LOCK["package"] if p["name"] == "smshooks")
    runtime = lock_closure(project["dependencies"])
    test_only = lock_closure(project["optional-dependencies"]["test"]) - runtime
    assert {"pytest", "hypothesis", "ruff", "mypy"} <= test_only
    assert {norm(d["name"]) for d in project["dependencies"]} <= set(installed)
    assert set(installed) - {"smshooks"} <= runtime, "installed beyond the runtime dependencies"
    assert not set(installed) & test_only
    assert {name: installed[name] for name in installed if name != "smshooks"} == {
        name: locked[name] for name in installed if name != "smshooks"
    }

    # The Procfile's commands start in that environment: the CLI, and gunicorn loading the app.
    run_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "WEBHOOK_SECRET": secrets.token_hex(32)}
    cli = subprocess.run(
        [str(bin_dir / "smshooks"), "--help"], cwd=build, env=run_env, capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0 and "worker" in cli.stdout and "release" in cli.stdout, cli.stdout + cli.stderr
    assert PROCFILE["release"].split() == ["smshooks", "release"]  # checks HANDLERS and settings, then migrates
    release = subprocess.run(
        PROCFILE["release"].split(),
        cwd=build,
        env={**run_env, "HANDLERS": "database", "DATABASE_URL": f"sqlite:///{tmp_path / 'release.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert release.returncode == 0 and "database ready" in release.stdout, release.stdout + release.stderr
    web = subprocess.run(
        [*PROCFILE["web"].replace("'", "").split(), "--check-config"],
        cwd=build,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert web.returncode == 0, web.stdout + web.stderr
    # --check-config does not import the worker class; gunicorn does when it starts a worker.
    worker_class = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "from gunicorn.util import load_class; from webhooks.cli import gunicorn_conf as c; "
            "print(load_class(c.worker_class).__name__)",
        ],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker_class.returncode == 0 and worker_class.stdout.strip() == "GeventWorker", worker_class.stderr


def app_json() -> dict:
    return json.loads(APP_JSON.read_text())


def test_app_json_runs_the_procfiles_processes():
    app = app_json()
    # release: is not a formation process: the platform runs it once per deploy
    assert set(app["formation"]) == set(PROCFILE) - {"release"}
    assert all(process["quantity"] >= 1 for process in app["formation"].values())
    plans = [addon["plan"] if isinstance(addon, dict) else addon for addon in app["addons"]]
    assert sorted(plan.split(":")[0] for plan in plans) == ["heroku-postgresql", "heroku-redis"]
    assert app["buildpacks"] == [{"url": "heroku/python"}]


def test_app_json_names_documented_settings_only():
    table = (ROOT / "docs" / "configuration.md").read_text()
    env = app_json()["env"]
    undocumented = sorted(name for name in env if f"| `{name}` |" not in table)
    assert not undocumented, f"app.json settings missing from docs/configuration.md: {undocumented}"
    assert env["WEBHOOK_SECRET"]["generator"] == "secret"
    assert {"HANDLERS", "SLACK_WEBHOOK_URL", "FALLBACK_EMAIL_TO", "SENTRY_DSN"} <= set(env)
    for name, setting in env.items():
        assert setting.get("description"), f"{name} has no description"
        if "value" not in setting and "generator" not in setting:
            # otherwise the Heroku Button refuses to deploy until the user types something
            assert setting.get("required") is False, f"{name} has no value and is not marked required: false"


def test_app_json_values_are_accepted_by_the_app():
    env = app_json()["env"]
    values = {name: setting["value"] for name, setting in env.items() if "value" in setting}
    values["WEBHOOK_SECRET"] = secrets.token_hex(32)  # what "generator": "secret" makes: 64 hex characters
    settings = Settings.from_env(values)
    assert settings.webhook_secrets == (values["WEBHOOK_SECRET"],)
    assert cert_reqs_setting(values) == "none"  # Heroku Key-Value Store's self-signed certificate
