"""The `slack` handler: a Block Kit message per event to an incoming webhook (`SLACK_WEBHOOK_URL`).

Posted with slack-sdk's `WebhookClient` (Slack's own client: it knows the webhook's
answers and ships the retry handler for HTTP 429). A short `Retry-After` is waited out
in the job; a long one fails the job, which RQ retries later (`RETRY_INTERVALS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from webhooks.events import Event, Kind, Status

from .base import Handler

MAX_WAIT = 30  # seconds of Retry-After waited out inside a job; longer waits go back to RQ
TEXT_LIMIT = 2900  # Slack refuses a section text over 3000 characters
TIMEOUT = 15

ICONS = {Status.DELIVERED: ":white_check_mark:", Status.FAILED: ":x:", Status.RECEIVED: ":speech_balloon:"}
OVERDUE_ICON = ":hourglass:"


def escape(text: str) -> str:
    """Slack's three control characters; anything else (newlines, *, _) is shown as sent."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _ShortRateLimitHandler(RateLimitErrorRetryHandler):
    """Retries a 429 after its Retry-After, unless that is longer than MAX_WAIT."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        return _retry_after(response.headers) <= MAX_WAIT


def _retry_after(headers: Mapping[str, Any]) -> int:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return int(raw)
            except (TypeError, ValueError):
                return MAX_WAIT + 1
    return 1


def summary(event: Event) -> str:
    """One line, for the message's notification text."""
    if event.kind is Kind.REPLY:
        return f"Reply from {event.sender or 'unknown number'} to SMS {event.message_id}"
    to = f" to {event.recipient}" if event.recipient else ""
    if event.kind is Kind.RECEIPT_OVERDUE:  # the receipt watchdog's (pipeline/watchdog.py)
        ago = event.raw.get("last_status_ago") or "time unknown"
        return f"No receipt for SMS {event.message_id}{to} (last: {event.status.value}, {ago})"
    return f"SMS {event.message_id}{to}: {event.status.value}"


def blocks_for(event: Event) -> list[dict[str, Any]]:
    """Status, number, message id, provider and (for a reply) its text, each escaped."""
    icon = OVERDUE_ICON if event.kind is Kind.RECEIPT_OVERDUE else ICONS.get(event.status, ":information_source:")
    number = event.sender if event.kind is Kind.REPLY else event.recipient
    fields = [
        ("Status", event.status.value),
        ("Number", number or "unknown"),
        ("Message id", event.message_id),
        ("Provider", event.provider),
    ]
    if event.description:
        fields.append(("Description", event.description))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{escape(summary(event))}*"}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{escape(value[:500])}"} for label, value in fields],
        },
    ]
    if event.kind is Kind.REPLY:
        text = escape(event.text or "(empty reply)")
        if len(text) > TEXT_LIMIT:
            text = (
                text[:TEXT_LIMIT].rpartition("&")[0] if "&" in text[TEXT_LIMIT - 5 : TEXT_LIMIT] else text[:TEXT_LIMIT]
            )
            text += "…"  # cut before an entity, never through one
        # Escaped, and verbatim: the phone's words can neither break the message nor
        # become links or @channel mentions.
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}})
    assert event.occurred_at is not None  # Event.__post_init__ defaults it to received_at
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": escape(f"{event.occurred_at.isoformat()} · {event.event_id}")}],
        }
    )
    return blocks


class SlackDeliveryError(RuntimeError):
    """Slack did not accept a message; the job is retried."""


class SlackHandler(Handler):
    """`SLACK_WEBHOOK_URL`: one message per event, in order."""

    name = "slack"
    max_batch = 10  # Slack takes about one message a second, and a 429 may wait up to 30 s inline

    def __init__(self, url: str) -> None:
        self.client = WebhookClient(url, timeout=TIMEOUT, retry_handlers=[_ShortRateLimitHandler(max_retry_count=2)])

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackHandler:
        url = env.get("SLACK_WEBHOOK_URL") or ""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            # The URL is a secret (anyone with it can post): say what is wrong, never echo it.
            raise ValueError(
                "SLACK_WEBHOOK_URL must be an https:// incoming-webhook URL "
                f"(got {'nothing' if not url else 'a ' + (parts.scheme or 'scheme-less') + ' URL'})"
            )
        return cls(url)

    def handle(self, event: Event) -> None:
        response = self.client.send(text=escape(summary(event)), blocks=blocks_for(event))
        if response.status_code == 429:
            raise SlackDeliveryError(
                f"Slack rate-limited the webhook (Retry-After: {_retry_after(response.headers)} s)"
            )
        if response.status_code != 200:
            raise SlackDeliveryError(f"Slack answered {response.status_code}: {response.body[:200]!r}")
