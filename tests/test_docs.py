"""Promises about the project itself: documented settings, the two README commands, tests per provider."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
SETTING = re.compile(r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']|_(?:int|intervals)\(env, ["']([A-Z_]+)""")


def settings_read_by_code() -> set[str]:
    names = set()
    for path in [*ROOT.glob("webhooks/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        for match in SETTING.finditer(path.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


def test_every_setting_is_documented():
    names = settings_read_by_code()
    assert {"REDIS_URL", "DATABASE_URL", "PORT", "WEBHOOK_SECRET", "HANDLERS", "SENTRY_DSN"} <= names
    undocumented = sorted(n for n in names if f"| `{n}` |" not in README)
    assert not undocumented, f"settings missing from the README's configuration table: {undocumented}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["bin/serve", "bin/test"]
    assert README.index("```sh") < README.index("\n## ")
    assert "bin/test" in (ROOT / ".ci" / "run").read_text()


def test_every_provider_has_tests():
    providers = [p.stem for p in (ROOT / "webhooks" / "providers").glob("*.py") if p.stem != "__init__"]
    assert providers
    missing = [p for p in providers if not (ROOT / "tests" / "providers" / f"test_{p}.py").exists()]
    assert not missing


def test_procfile_declares_release_web_and_worker():
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(procfile) == {"release", "web", "worker"}
    assert "webhooks:create_app()" in procfile["web"] and "smshooks worker" in procfile["worker"]
