"""Events for the tests of what reads the database handler's tables (handlers/db_read.py, the API, the console)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from webhooks.events import Event, Kind, Status

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def receipt(message_id: str, status: Status, minutes: int, phone: str = "+61409000000", provider: str = "smsc"):
    return Event(
        provider=provider,
        kind=Kind.RECEIPT,
        status=status,
        message_id=message_id,
        final=status in (Status.DELIVERED, Status.FAILED),
        provider_status=f"code-{status.value}",
        description=f"the provider says {status.value}",
        recipient=phone,
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0 + timedelta(minutes=minutes, seconds=1),
        raw={"id": message_id, "status": status.value},
    )


def reply(message_id: str, text: str, phone: str = "+61409000000") -> Event:
    return Event(
        provider="smsc",
        kind=Kind.REPLY,
        status=Status.RECEIVED,
        final=True,
        message_id=message_id,
        sender=phone,
        text=text,
        received_at=T0 + timedelta(hours=1),
        raw={"mes": text},
    )
