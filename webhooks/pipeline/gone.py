"""Destinations that said they are gone (HTTP 410): nothing more is sent to them until a replay.

When a handler raises `handlers.base.DestinationGone`, its job fails at once and its lane
(`forward`, `forward[2]`, ...) is marked gone here, with the destination it delivered to.
Every later job of that lane then fails at once too, without a request, into the failed
registry, so its events stay replayable; only the first failure sends the fallback email
and reaches Sentry. The mark names the destination: a worker configured with a new URL for
the lane is not held back by the old one's. `smshooks replay` of the lane's jobs clears it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from redis import Redis

from handlers.base import DestinationGone

PREFIX = "smshooks:gone:"


class StillGone(DestinationGone):
    """A job not sent because its destination is marked gone; already reported, so not again."""

    already_reported = True  # telemetry/sentry.py drops reports of such exceptions


def key(lane: str) -> str:
    """The lane's mark (jobs.handle reads it in the round trip that counts the attempt)."""
    return PREFIX + lane


def mark(redis: Redis, lane: str, destination: str, reason: str) -> bool:
    """Mark the lane gone; True for the job that marked it first."""
    value = {"destination": destination, "reason": reason, "at": datetime.now(timezone.utc).isoformat()}
    return bool(redis.set(key(lane), json.dumps(value), nx=True))


def reason(redis: Redis, lane: str, destination: str) -> str | None:
    """Why the lane is gone (the 410 it answered, and when), if it is gone for this destination."""
    return reason_in(redis.get(key(lane)), destination)


def reason_in(raw: bytes | str | None, destination: str) -> str | None:
    """`reason`, from the lane's mark as read (None: no mark)."""
    if raw is None:
        return None
    value = json.loads(raw)
    if value.get("destination") != destination:
        return None  # the lane now delivers elsewhere
    return f"{value['reason']} (since {value['at']})"


def clear(redis: Redis, lanes: list[str]) -> int:
    """Deliver to these lanes again (a replay says the destination is back)."""
    return int(redis.delete(*(key(lane) for lane in lanes))) if lanes else 0
