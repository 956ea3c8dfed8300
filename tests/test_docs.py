"""Promises about the project itself: documented settings and modules, the two README commands, links."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
SETTING = re.compile(
    r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']|(?:int|intervals)_setting\(env, ["']([A-Z_]+)"""
)
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)\s]*)?\)")


def settings_read_by_code() -> set[str]:
    names = set()
    for path in [*ROOT.glob("webhooks/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        for match in SETTING.finditer(path.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


def test_every_setting_is_documented():
    names = settings_read_by_code()
    assert {"REDIS_URL", "DATABASE_URL", "PORT", "WEBHOOK_SECRET", "HANDLERS", "SENTRY_DSN", "DIGITALEO_MODE"} <= names
    table = (DOCS / "configuration.md").read_text()
    undocumented = sorted(n for n in names if f"| `{n}` |" not in table)
    assert not undocumented, f"settings missing from docs/configuration.md's table: {undocumented}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["bin/serve", "bin/test"]
    assert README.index("```sh") < README.index("\n## ")
    assert "bin/test" in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_front_page():
    # The reference lives in docs/; the front page stays short enough to read in one go.
    assert len(README.splitlines()) <= 250


def test_every_module_is_in_the_architecture_doc():
    architecture = (DOCS / "architecture.md").read_text()
    modules = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("webhooks/**/*.py") if p.name != "__init__.py")
    # Named as a path of its own (`web/endpoint.py`), not as the tail of another one (`config.py` of
    # `providers/digitaleo/config.py`).
    named = [
        m for m in modules if re.search(rf"(?<![\w/.]){re.escape(m.removeprefix('webhooks/'))}(?!\w)", architecture)
    ]
    missing = sorted(set(modules) - set(named))
    assert not missing, f"modules docs/architecture.md does not describe: {missing}"


def test_relative_links_lead_somewhere():
    broken = []
    for page in [ROOT / "README.md", *DOCS.glob("*.md"), *ROOT.glob("examples/*/README.md")]:
        for target in LINK.findall(page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken


def test_every_provider_has_tests():
    room = ROOT / "webhooks" / "providers"
    providers = [p.stem for p in room.glob("*.py") if p.stem != "__init__"]
    providers += [p.name for p in room.iterdir() if (p / "__init__.py").exists()]  # a provider as a package
    assert {"redoxygen", "smsc", "ogangi", "digitaleo"} <= set(providers)
    missing = [p for p in providers if not (ROOT / "tests" / "providers" / f"test_{p}.py").exists()]
    assert not missing


def test_procfile_declares_release_web_and_worker():
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(procfile) == {"release", "web", "worker"}
    assert "webhooks:create_app()" in procfile["web"] and "smshooks worker" in procfile["worker"]
