"""One module per provider: raw callback fields in, `Event`s out. Nothing here touches Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from marshmallow import ValidationError, fields

from webhooks.events import FINAL_STATUSES, Event, Kind, ReplyCopy, Status, reply_event_id, reply_match_key
from webhooks.phones import to_e164


class ParseError(ValueError):
    """The callback is not what the provider sends; `errors` maps each bad field to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class SignatureError(ParseError):
    """The provider's own signature of the callback is missing or wrong (401, nothing stored)."""


@dataclasses.dataclass(frozen=True)
class ParseContext:
    """What a parser needs beyond the payload."""

    received_at: datetime
    phone_region: str | None = None
    # The user's <PROVIDER>_STATUS_MAP overrides by provider name, codes as the parser compares
    # them (status_maps.read_status_maps); built once per process, shared by every context.
    status_maps: Mapping[str, Mapping[str, Status]] = dataclasses.field(default_factory=dict)

    def phone(self, number: str | None) -> str | None:
        return to_e164(number, self.phone_region)

    def status_for(self, provider: str, code: str, builtin: tuple[Status, bool]) -> tuple[Status, bool]:
        """The user's mapping of `code` (final as its status is) when there is one, else the built-in one."""
        mapped = self.status_maps.get(provider, {}).get(code)
        return builtin if mapped is None else (mapped, mapped in FINAL_STATUSES)


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '¹' and '٣', which int() then refuses."""
    return text.isascii() and text.isdigit()


class Code(fields.Field):
    """A provider code or id sent as a string or a number: `"0000"`, `0`, `123`."""

    def __init__(self, *, pad: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pad = pad

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError(f"must be a string or a whole number, got {type(value).__name__}")
        text = str(value).strip()
        if not text:
            raise ValidationError("must not be empty")
        if len(text) > 64:
            raise ValidationError("is longer than 64 characters")
        return text.zfill(self.pad) if self.pad and is_number(text) else text


def reply_event(
    ctx: ParseContext,
    provider: str,
    message_id: str,
    sender: str | None,
    text: str | None,
    *,
    route: str,
    facts: Sequence[str | None] = (),
    distinct: bool | None = None,
    **extra: Any,
) -> Event:
    """A reply from a phone: its id from `route`'s own `facts` of it, its match key for the copies on other routes.

    `distinct` defaults to whether any fact was given (events.ReplyCopy).
    """
    given = tuple(f or "" for f in facts)
    return Event(
        provider=provider,
        kind=Kind.REPLY,
        status=Status.RECEIVED,
        final=True,
        message_id=message_id,
        sender=sender,
        text=text,
        received_at=ctx.received_at,
        event_id=reply_event_id(provider, message_id, sender, text, route, given),
        reply_copy=ReplyCopy(
            reply_match_key(provider, message_id, sender, text), route, any(given) if distinct is None else distinct
        ),
        **extra,
    )
