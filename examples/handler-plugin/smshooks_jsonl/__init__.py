"""An smshooks handler in a package of its own: every event it is given, one JSON line in a file."""

from __future__ import annotations

import json
from pathlib import Path

from handlers import Handler
from webhooks.events import EVENT_SCHEMA


class JsonLinesHandler(Handler):
    """`JSONL_PATH`: the file to append to (it is created)."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_env(cls, env):
        path = env.get("JSONL_PATH")
        if not path:
            raise ValueError("JSONL_PATH must be set to the file events are appended to, such as events.jsonl")
        return cls(Path(path))

    def handle(self, event):
        self.handle_batch([event])

    def handle_batch(self, events):
        # One open per job, not per event. A retried job may append events again: readers dedupe on event_id.
        with self.path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(EVENT_SCHEMA.dump(e), ensure_ascii=False) + "\n" for e in events)
