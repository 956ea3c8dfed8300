"""The `log` handler: one JSON line per event on the worker's standard output, for `heroku logs`."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TextIO

from webhooks.events import Event

from .base import Handler

# The event's own fields; `raw` is left out (it is the provider's whole callback).
FIELDS = ("event_id", "provider", "kind", "status", "final", "message_id", "recipient", "sender", "text",
          "provider_status", "description", "occurred_at", "received_at")


def line_for(event: Event) -> str:
    """`{"event": "sms", "event_id": ..., "status": "delivered", ...}` on one line (newlines escaped)."""
    record: dict[str, object] = {"event": "sms"}
    for field in FIELDS:
        value = getattr(event, field)
        record[field] = value.isoformat() if hasattr(value, "isoformat") else getattr(value, "value", value)
    return json.dumps(record, ensure_ascii=False)


class LogHandler(Handler):
    """No settings: writes to standard output, which platforms collect."""

    name = "log"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogHandler:
        return cls()

    def handle(self, event: Event) -> None:
        stream = self.stream or sys.stdout
        stream.write(line_for(event) + "\n")
        stream.flush()
