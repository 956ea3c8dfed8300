"""Finding and building handlers: entry points in the `smshooks.handlers` group, built-ins included."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from .base import Handler

GROUP = "smshooks.handlers"


class HandlerError(RuntimeError):
    """A handler named in HANDLERS cannot be found or built; the message says which and why."""


def installed() -> dict[str, Any]:
    """Every handler entry point installed, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_class(name: str) -> type[Handler]:
    """An installed handler by name, or `package.module:Class` for one not packaged yet."""
    available = installed()
    try:
        if name in available:
            target = available[name].load()
        elif ":" in name:
            module, _, attr = name.partition(":")
            target = getattr(importlib.import_module(module), attr)
        else:
            known = ", ".join(sorted(available)) or "none"
            raise HandlerError(f"unknown handler {name!r} in HANDLERS; installed: {known}")
    except HandlerError:
        raise
    except Exception as exc:  # an import error in someone else's package: report it by name
        raise HandlerError(f"handler {name!r} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(target, type) and issubclass(target, Handler)):
        raise HandlerError(f"handler {name!r} is {target!r}, not a subclass of handlers.Handler")
    return target


def build(names: Sequence[str], env: Mapping[str, str]) -> dict[str, Handler]:
    """Every named handler, built; the first one that fails stops start-up with its reason."""
    built: dict[str, Handler] = {}
    for name in names:
        cls = load_class(name)
        try:
            built[name] = cls.from_env(env)
        except Exception as exc:
            raise HandlerError(f"handler {name!r} cannot start: {exc}") from exc
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
    """Fail fast (web start-up) on names that do not resolve, without building anything."""
    for name in names:
        load_class(name)
