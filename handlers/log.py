"""The `log` handler: one JSON line per event on the worker's standard output, for `heroku logs`."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from webhooks.events import Event, EventSchema

from .base import Handler

# The event's wire form without `raw` (the provider's whole callback).
_LINE = EventSchema(exclude=("raw",))


def line_for(event: Event) -> str:
    """`{"event": "sms", "event_id": ..., "status": "delivered", ...}` on one line (newlines escaped)."""
    return json.dumps({"event": "sms", **_LINE.dump(event)}, ensure_ascii=False)


class LogHandler(Handler):
    """No settings: writes to standard output, which platforms collect."""

    name = "log"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def handle(self, event: Event) -> None:
        stream = self.stream or sys.stdout
        stream.write(line_for(event) + "\n")
        stream.flush()
