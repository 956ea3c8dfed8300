"""Finding and building handlers: entry points in the `smshooks.handlers` group, built-ins included."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from webhooks.telemetry.redaction import scrub_text

from .base import Handler

GROUP = "smshooks.handlers"
# A plug-in's import that takes longer is reported as broken and left behind: gunicorn kills a
# worker whose app takes its `timeout` (30 s) to build, and a release step must end.
IMPORT_TIMEOUT = 10.0


class HandlerError(RuntimeError):
    """A handler named in HANDLERS cannot be found or built; the message says which and why."""


class UnknownHandler(HandlerError):
    """The name is neither an installed entry point nor a `module:Class`."""


class BrokenHandler(HandlerError):
    """The handler is there but raises (or hangs) on import, is not a Handler, or cannot be built."""


def _failure(exc: BaseException, with_type: bool = True) -> str:
    """What went wrong in someone else's code, said without the URL passwords and credentials it may carry."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    # The configured secrets are taken out of every log line (redact_logs); a password in a URL
    # that is not configured (a plug-in's own) is not, and this text is logged, mailed and shown.
    return scrub_text(f"{type(exc).__name__}: {exc}" if with_type else str(exc), ())


def _import(name: str, load: Callable[[], Any], timeout: float) -> Any:
    """`load()` (an import of someone else's code) in a thread: a hang, sys.exit() or any error becomes BrokenHandler.

    KeyboardInterrupt is the one exception not caught: it reaches the waiting thread, as Ctrl-C should.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = load()
        except BaseException as exc:  # noqa: BLE001 (SystemExit too: a plug-in must not end the process)
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"smshooks-import-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise BrokenHandler(f"handler {name!r} cannot be loaded: its import did not finish within {timeout:g} s")
    if "error" in outcome:
        exc = outcome["error"]
        raise BrokenHandler(f"handler {name!r} cannot be loaded: {_failure(exc)}") from exc
    return outcome["value"]


def installed() -> dict[str, Any]:
    """Every handler entry point installed, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_class(name: str, timeout: float | None = None) -> type[Handler]:
    """An installed handler by name, or `package.module:Class` for one not packaged yet.

    Raises UnknownHandler for a name that is neither, BrokenHandler for one whose import raises,
    calls sys.exit() or takes over `timeout` seconds (IMPORT_TIMEOUT), or that is not a Handler.
    """
    available = installed()
    if name in available:
        load = available[name].load
    elif ":" in name:
        module, _, attr = name.partition(":")

        def load() -> Any:
            return getattr(importlib.import_module(module), attr)
    else:
        known = ", ".join(sorted(available)) or "none"
        raise UnknownHandler(f"unknown handler {name!r} in HANDLERS; installed: {known}")
    target = _import(name, load, IMPORT_TIMEOUT if timeout is None else timeout)
    if not (isinstance(target, type) and issubclass(target, Handler)):
        raise BrokenHandler(f"handler {name!r} is {target!r}, not a subclass of handlers.Handler")
    return target


def build(names: Sequence[str], env: Mapping[str, str]) -> dict[str, Handler]:
    """Every named handler, built; the first one that fails stops start-up with its reason."""
    built: dict[str, Handler] = {}
    for name in names:
        cls = load_class(name)
        try:
            # In this thread, not _import's: a handler may make thread-bound things (an sqlite3 connection).
            built[name] = cls.from_env(env)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 (SystemExit from a plug-in's from_env too)
            reason = _failure(exc, with_type=False)
            raise BrokenHandler(f"handler {name!r} cannot start: {reason}") from exc
    return built


def build_each(names: Sequence[str], env: Mapping[str, str]) -> tuple[dict[str, Handler], dict[str, str]]:
    """Every named handler that can be built, and the reason for each one that cannot (the worker's way).

    One broken plug-in must not stop the others: its jobs fail with this reason, are
    retried, and end with the fallback and in the failed registry, ready for replay.
    """
    built: dict[str, Handler] = {}
    broken: dict[str, str] = {}
    for name in names:
        try:
            built.update(build([name], env))
        except HandlerError as err:
            broken[name] = str(err)
    return built, broken


def lane_name(name: str, index: int) -> str:
    """The job name of a handler's `index`-th destination (from 1): `forward`, `forward[2]`, ..."""
    return name if index == 1 else f"{name}[{index}]"


def handler_of(job_name: str) -> str:
    """The HANDLERS name a lane's job name belongs to: `forward[2]` -> `forward` (lane_name's inverse)."""
    return job_name.partition("[")[0]


def lanes(name: str, handler: Handler) -> dict[str, Handler]:
    """The handler's destinations by job name (Handler.lanes); most handlers have one, itself."""
    return {lane_name(name, i): lane for i, lane in enumerate(handler.lanes(), start=1)}


def env_name(name: str) -> str:
    """The name a handler's settings go by: its entry-point name, or the `name` of a `module:Class`."""
    if ":" not in name:
        return name
    try:
        return load_class(name).name or name.rpartition(":")[2]
    except HandlerError:
        return name.rpartition(":")[2]


def check(names: Sequence[str]) -> None:
    """Fail fast (`smshooks run`) on names that do not resolve, without building anything."""
    for name in names:
        load_class(name)


def problems(names: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """Why each named handler cannot run (unknown, broken on import, or on build), by name; {} when all can.

    What the web process checks once at start: every handler is built, then closed again,
    since the web never calls one.
    """
    built, broken = build_each(names, env)
    for name, handler in built.items():
        for lane in lanes(name, handler).values():
            lane.close()
    return broken
