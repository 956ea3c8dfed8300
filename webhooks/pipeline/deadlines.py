"""The receipt watchdog's bookkeeping, written by the dispatch: when each message in flight is due.

Every receipt not final arms its message's deadline (`RECEIPT_DEADLINE`, or the provider's
`<PROVIDER>_RECEIPT_DEADLINE`) in a sorted set scored by deadline, so the watchdog's pass
(`pipeline/watchdog.py`) reads only what is due and a million messages in flight cost no scan.
A final status (a final receipt, or a reply) disarms it, and is remembered for `FINAL_KEPT`
seconds so that a non-final status arriving after it (out of order) starts no new clock.

It runs inside the dispatch's MULTI/EXEC (`queueing.dispatch_inbox`): the batch is already in
memory there, and a deadline recorded in the transaction that trims the inbox is never lost.
One Lua call per batch, O(log n) per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.client import Pipeline

from webhooks.config import Settings
from webhooks.events import Kind

DEADLINES = "smshooks:watchdog:deadlines"  # sorted set: "<provider>:<message id>" scored by its deadline
LAST = "smshooks:watchdog:last"  # hash: member -> "<last status> <its time, unix seconds>"
FINAL = "smshooks:watchdog:final"  # sorted set: members seen final, scored by when (trimmed by the pass)
ASKED = "smshooks:watchdog:asked"  # set: Digitaleo members whose API was asked before declaring them
FINAL_KEPT = 3600  # seconds a final status keeps a late non-final one from arming a deadline

# KEYS: deadlines, last, final, asked. ARGV: now, then (member, final 1/0, deadline, "status time") groups.
# Arming is ZADD NX: the first non-final status starts the clock, and a message cycling through
# `sent` never postpones it. The last status is replaced only by one at least as recent.
_TRACK = """
for i = 2, #ARGV, 4 do
  local member = ARGV[i]
  if ARGV[i + 1] == '1' then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
    redis.call('SREM', KEYS[4], member)
    redis.call('ZADD', KEYS[3], ARGV[1], member)
  elseif not redis.call('ZSCORE', KEYS[3], member) then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 2], member)
    local old = redis.call('HGET', KEYS[2], member)
    if not old or tonumber(string.match(old, ' (.*)$')) <= tonumber(string.match(ARGV[i + 3], ' (.*)$')) then
      redis.call('HSET', KEYS[2], member, ARGV[i + 3])
    end
  end
end
return 0
"""


def member_for(provider: str, message_id: str) -> str:
    return f"{provider}:{message_id}"


def split_member(member: str) -> tuple[str, str]:
    """`digitaleo:123` -> ("digitaleo", "123"); provider names hold no colon, message ids may."""
    provider, _, message_id = member.partition(":")
    return provider, message_id


def watching(settings: Settings) -> bool:
    """Whether any provider's messages are watched at all."""
    return settings.receipt_deadline is not None or any(s is not None for _, s in settings.receipt_deadlines)


_REPLY = Kind.REPLY.value
_TRACKED = frozenset({Kind.RECEIPT.value, _REPLY})


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def track_args(settings: Settings, events: Sequence[dict[str, Any]], now: float) -> list[Any]:
    """The script's ARGV for a batch of events in their wire form; [] when nothing is to track."""
    args: list[Any] = []
    deadlines: dict[str, int | None] = {}
    for event in events:
        kind = event["kind"]
        if kind not in _TRACKED:
            continue  # an unread email says nothing of a message; receipt_overdue is our own echo
        provider = event["provider"]
        if provider not in deadlines:
            deadlines[provider] = settings.deadline_for(provider)
        seconds = deadlines[provider]
        if seconds is None:
            continue
        member = member_for(event["provider"], event["message_id"])
        if event["final"] or kind == _REPLY:  # a reply: the message reached the phone
            args += [member, 1, 0, ""]
        else:
            deadline = round(_timestamp(event["received_at"]) + seconds, 3)
            args += [member, 0, deadline, f"{event['status']} {_timestamp(event['occurred_at']):.3f}"]
    return [round(now, 3), *args] if args else []


def track(pipe: Pipeline, settings: Settings, events: Sequence[dict[str, Any]], now: float) -> None:
    """Queue the batch's deadline bookkeeping on the dispatch's MULTI (one command for the batch)."""
    args = track_args(settings, events, now)
    if args:
        pipe.eval(_TRACK, 4, DEADLINES, LAST, FINAL, ASKED, *args)
