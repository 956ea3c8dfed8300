"""Per-handler settings named after the handler: which events it wants, and how it is retried."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webhooks.config import ConfigError, intervals_setting
from webhooks.events import Kind, Status

# What `<NAME>_EVENTS` may name: a kind (every event of it) or a status.
EVENT_WORDS = frozenset(k.value for k in Kind) | frozenset(s.value for s in Status)


def env_prefix(name: str) -> str:
    """`slack` -> `SLACK`; `my-handler` -> `MY_HANDLER`."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def _events(env: Mapping[str, str], key: str) -> frozenset[str] | None:
    raw = (env.get(key) or "").strip()
    if not raw or raw.lower() in ("all", "*"):
        return None  # everything
    words = frozenset(w.strip().lower() for w in raw.split(",") if w.strip())
    unknown = sorted(words - EVENT_WORDS)
    if unknown:
        raise ConfigError(
            f"{key} may name kinds and statuses ({', '.join(sorted(EVENT_WORDS))}), got {', '.join(map(repr, unknown))}"
        )
    return words


@dataclasses.dataclass(frozen=True)
class Policy:
    """What one handler is given (`events`: None means everything), in jobs of at most `max_batch`, and its retries.

    `lanes` names the handler's independent destinations (handlers.Handler.lanes): each gets
    jobs of its own. `ordered` (handlers.Handler.ordered) keeps each message's events in order.
    """

    name: str
    events: frozenset[str] | None
    retry_intervals: tuple[int, ...]
    max_batch: int | None = None  # the handler's (handlers.Handler.max_batch)
    lanes: tuple[str, ...] = ()  # the job names of its destinations; () means one, the name in HANDLERS
    ordered: bool = False

    @classmethod
    def from_env(
        cls,
        name: str,
        env: Mapping[str, str],
        default_intervals: tuple[int, ...],
        max_batch: int | None = None,
        lanes: tuple[str, ...] = (),
        ordered: bool = False,
    ) -> Policy:
        """Read `<NAME>_EVENTS` and `<NAME>_RETRY_INTERVALS`; ConfigError names a bad one."""
        prefix = env_prefix(name)
        intervals_key = f"{prefix}_RETRY_INTERVALS"
        intervals = intervals_setting(env, intervals_key, "1,2") if env.get(intervals_key) else default_intervals
        return cls(name, _events(env, f"{prefix}_EVENTS"), intervals, max_batch, lanes, ordered)

    def wants(self, event: Mapping[str, Any]) -> bool:
        """Whether an event (in its wire form) is one this handler takes."""
        return self.events is None or event["kind"] in self.events or event["status"] in self.events

    def select(self, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [e for e in events if self.wants(e)]

    def jobs(self, events: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
        """The events this handler wants, cut into the jobs it is given."""
        wanted = self.select(events)
        size = self.max_batch or len(wanted) or 1
        return [wanted[i : i + size] for i in range(0, len(wanted), size)]

    def describe(self) -> str:
        wanted = "all events" if self.events is None else ",".join(sorted(self.events))
        retries = ",".join(map(str, self.retry_intervals)) or "none"
        return f"{wanted}; retries {retries}"
