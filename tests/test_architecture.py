"""The layers of docs/architecture.md, kept true: a module imports only from its own layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Bottom to top. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("webhooks.config", "webhooks.events", "webhooks.phones", "webhooks.redis_connection", "webhooks.telemetry"),
    ("webhooks.providers", "webhooks.email", "handlers"),  # email: its parsers; endpoint and smtpd sit higher
    ("webhooks.pipeline", "webhooks.providers.digitaleo.api", "webhooks.providers.digitaleo.sync"),
    ("webhooks.web", "webhooks.console", "webhooks.email.endpoint", "webhooks.email.smtpd"),
    ("webhooks.routes", "webhooks.app", "webhooks.cli", "webhooks.jobs", "webhooks"),
)
# Pure of the web: these rooms never import Flask or Werkzeug (the providers' worker side included).
NO_FLASK = ("webhooks.providers", "webhooks.pipeline", "handlers", "webhooks.email.parse", "webhooks.email.text")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The index in LAYERS, or -1; `webhooks` itself (its __init__) names only itself, not its rooms."""
    best, found = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != "webhooks"
            if (module == prefix or inside) and len(prefix) > best:
                best, found = len(prefix), index
    return found


def imports(module: str, source: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, at the top or inside a function, with relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            # `from webhooks.web import endpoint` imports the module webhooks.web.endpoint
            for alias in node.names:
                path = ROOT / Path(*f"{origin}.{alias.name}".split("."))
                if path.with_suffix(".py").exists() or path.is_dir():
                    found.add(f"{origin}.{alias.name}")
    return found


def upward(module: str, source: str, is_package: bool = False) -> list[str]:
    """The imports of `module` that reach above its own layer."""
    return [
        f"{module} (layer {layer(module) + 1}) imports {target} (layer {layer(target) + 1})"
        for target in sorted(imports(module, source, is_package))
        if target.split(".")[0] in ("webhooks", "handlers") and layer(target) > layer(module)
    ]


def our_modules() -> list[Path]:
    return sorted([*ROOT.glob("webhooks/**/*.py"), *ROOT.glob("handlers/**/*.py")])


def test_every_module_has_a_layer():
    assert [module_name(p) for p in our_modules() if layer(module_name(p)) < 0] == []


def test_no_module_imports_a_higher_layer():
    found = []
    for path in our_modules():
        found += upward(module_name(path), path.read_text(), path.name == "__init__.py")
    assert found == []


def test_providers_pipeline_and_handlers_never_import_flask():
    found = []
    for path in our_modules():
        here = module_name(path)
        if any(here == room or here.startswith(room + ".") for room in NO_FLASK):
            targets = imports(here, path.read_text(), path.name == "__init__.py")
            found += [f"{here} imports {t}" for t in targets if t.split(".")[0] in ("flask", "werkzeug")]
    assert found == []


def test_the_check_sees_an_upward_import():
    # The checks above must be able to fail: a bottom module naming a higher one, however spelled, is seen.
    source = "from webhooks.web import endpoint\n\ndef later():\n    from .cli.main import main\n"
    assert upward("webhooks.config", source) == [
        "webhooks.config (layer 1) imports webhooks.cli.main (layer 5)",
        "webhooks.config (layer 1) imports webhooks.web (layer 4)",
        "webhooks.config (layer 1) imports webhooks.web.endpoint (layer 4)",
    ]
    assert upward("webhooks.pipeline.queueing", "from webhooks.events import Event\nimport handlers.policy\n") == []
    assert layer("webhooks.newroom.module") == -1  # a new room must be given its layer here


def test_tests_share_helpers_not_each_other():
    # What several rooms' tests need lives in a helper module at the top of tests/ (processes.py,
    # redoxygen_samples.py, ...), so a test module is never imported from another folder's tests.
    found = []
    for path in sorted(ROOT.glob("tests/**/test_*.py")):
        here = module_name(path)
        for target in imports(here, path.read_text()):
            parts = target.split(".")
            if parts[0] == "tests" and parts[-1].startswith("test_") and parts[:-1] != here.split(".")[:-1]:
                found.append(f"{here} imports {target}")
    assert found == []
