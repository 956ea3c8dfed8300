"""Handler plug-ins installed for one test: a module and its dist-info in a folder put on PYTHONPATH.

importlib.metadata finds the dist-info as it finds pip's, so the entry point is a real one,
and nothing is installed into the shared virtualenv.
"""

from __future__ import annotations

from pathlib import Path

# Its message carries a password in a URL and the webhook secret: what /healthz and logs must scrub.
RAISES_ON_IMPORT = """
import os
raise RuntimeError(
    "cannot reach https://plugin:hunter2-Pa55word@plugins.example/api with token "
    + os.environ.get("WEBHOOK_SECRET", "none")
)
"""
EXITS_ON_IMPORT = "import sys\nsys.exit(3)\n"
HANGS_ON_IMPORT = "import time\ntime.sleep(3)\n"  # longer than the tests' import timeout, short enough to end


def plugin_folder(folder: Path, name: str, module_source: str) -> Path:
    """`folder` holding module `smshooks_<name>` and the entry point `<name>` -> `smshooks_<name>:Handler`."""
    module = f"smshooks_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(module_source)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[smshooks.handlers]\n{name} = {module}:Handler\n")
    return folder
