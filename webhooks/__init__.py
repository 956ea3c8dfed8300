"""smshooks' HTTP side: provider callbacks become events in Redis for RQ workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .events import Event, Kind, Status

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["Event", "Kind", "Status", "create_app"]


def __getattr__(name: str) -> Any:
    # The app factory imports the handlers, and the handlers import webhooks' lower layers
    # (events, config, telemetry): loading the app only when asked for keeps that no cycle.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
