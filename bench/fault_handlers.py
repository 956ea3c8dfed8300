"""A handler that counts deliveries, for bench/faults: `HANDLERS=database,bench.fault_handlers:Counter`.

It appends one row per event it is given to a SQLite table with no unique constraint, so an
event handled twice shows up as two rows: that is what the fault scenarios call a duplicate.
Its own SQLite file keeps it apart from the service under test (Redis may be killed, the
database handler's PostgreSQL may be down) and lets another process read the count.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence

from handlers import Handler
from webhooks.events import Event

SCHEMA = "CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL)"


def init_counter(path: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SCHEMA)
    db.close()


class Counter(Handler):
    """Waits FAULT_HANDLER_DELAY seconds (a slow service), then records each event once per delivery."""

    name = "counter"

    def __init__(self, path: str, delay: float) -> None:
        self.path = path
        self.delay = delay

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Counter:
        path = env.get("FAULT_COUNTER_DB")
        if not path:
            raise ValueError("FAULT_COUNTER_DB must be the path of the deliveries SQLite file, got nothing")
        return cls(path, float(env.get("FAULT_HANDLER_DELAY") or 0))

    def handle_batch(self, events: Sequence[Event]) -> None:
        # The side effect comes last, as with a service call: a worker killed during the wait
        # has delivered nothing, and the job's re-run delivers once.
        time.sleep(self.delay)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                db.executemany(
                    "INSERT INTO deliveries (event_id, pid, at) VALUES (?, ?, ?)",
                    [(e.event_id, os.getpid(), time.time()) for e in events],
                )
        finally:
            db.close()


def deliveries(path: str) -> dict[str, int]:
    """How many times each event was delivered."""
    db = sqlite3.connect(path, timeout=30)
    try:
        return dict(db.execute("SELECT event_id, COUNT(*) FROM deliveries GROUP BY event_id").fetchall())
    finally:
        db.close()
