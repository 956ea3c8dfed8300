"""The handler contract: a name, built once per worker from the environment, and one method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # webhooks imports handlers at start-up; the contract needs Event only for types
    from webhooks.events import Event


class Handler:
    """Subclass, set `name`, implement `handle`; register under the `smshooks.handlers` entry point.

    A handler that raises is retried with backoff (`RETRY_INTERVALS`); so `handle`
    must be safe to run again for the same event.
    """

    name: ClassVar[str] = ""
    # The most events one job gives this handler (None: the whole dispatch batch, BATCH_SIZE).
    # A service taken one message at a time sets it, so that a job fits in JOB_TIMEOUT and a
    # retry repeats little.
    max_batch: ClassVar[int | None] = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Handler:
        """Build the handler from settings; raise ValueError naming a bad setting."""
        return cls()

    def handle(self, event: Event) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement handle(event)")

    def handle_batch(self, events: Sequence[Event]) -> None:
        """Handle many events at once; override when the service takes batches (one SQL statement)."""
        for event in events:
            self.handle(event)

    def close(self) -> None:
        """Release connections when the worker stops."""
