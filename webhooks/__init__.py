"""smshooks' HTTP side: provider callbacks become events in Redis for RQ workers."""

from .app import create_app
from .events import Event, Kind, Status

__all__ = ["Event", "Kind", "Status", "create_app"]
