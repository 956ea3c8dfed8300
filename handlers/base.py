"""The handler contract: a name, built once per worker from the environment, and one method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # webhooks imports handlers at start-up; the contract needs Event only for types
    from webhooks.events import Event


class RetryLater(Exception):
    """Raised by a handler whose service asked to be called again later (HTTP 429/503 `Retry-After`).

    The job is retried as any failed job is, but not before `seconds` have passed.
    """

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class DestinationGone(Exception):
    """Raised by a handler whose destination said it is gone for good (HTTP 410).

    The job fails at once, without retries, and so does every later job of this handler
    while it delivers to the same `destination`: their events stay in the failed registry,
    for `smshooks replay` once the destination is back.
    """


class PartlyHandled(Exception):
    """Raised by `handle_batch` when the first `done` events were handled before `cause` stopped it.

    The job records the progress: its retries, and a replay, start at the first event not handled,
    so what the destination accepted is not sent again. `cause` is what the handler would have
    raised (a RetryLater or DestinationGone keeps its meaning).
    """

    def __init__(self, done: int, cause: Exception) -> None:
        super().__init__(f"{done} event(s) handled, then: {cause}")
        self.done = done
        self.cause = cause


class Handler:
    """Subclass, set `name`, implement `handle`; register under the `smshooks.handlers` entry point.

    A handler that raises is retried with backoff (`RETRY_INTERVALS`); so `handle`
    must be safe to run again for the same event.
    """

    name: ClassVar[str] = ""
    # The most events one job gives this handler (None: the whole dispatch batch, BATCH_SIZE).
    # A service taken one message at a time sets it, so that a job fits in JOB_TIMEOUT and a
    # retry repeats little.
    max_batch: int | None = None
    # True: the events of one message reach this handler in the order they were stored, a job
    # waiting for an earlier job with events of the same message (even one being retried).
    ordered: ClassVar[bool] = False

    @property
    def destination(self) -> str:
        """Where this handler delivers, safe to show in logs and emails (no secret in it)."""
        return self.name

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

    def lanes(self) -> Sequence[Handler]:
        """Destinations delivered to independently, each in jobs of its own (one URL's outage
        never holds up another's); the first keeps the handler's name, the others are named
        `name[2]`, `name[3]`, ... Most handlers are one lane: themselves."""
        return (self,)

    def close(self) -> None:
        """Release connections when the worker stops."""
