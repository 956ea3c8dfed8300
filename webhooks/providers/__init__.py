"""One module per provider: raw callback fields in, `Event`s out. Nothing here touches Redis."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ..phones import to_e164


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

    def phone(self, number: str | None) -> str | None:
        return to_e164(number, self.phone_region)
