"""The `email` handler: one plain-text mail per event over SMTP; also the fallback for failed handlers.

Messages are built with `email.message.EmailMessage`, whose default policy folds and
encodes headers; everything that goes into a header is also put on one line first,
so a reply text or message id with CR/LF can never add a header (no injection).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from webhooks.events import Event, Kind

from .base import Handler

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
TIMEOUT = 30  # seconds for connecting and each SMTP command


def one_line(value: object, limit: int = 200) -> str:
    """Header-safe: whitespace (CR/LF included) folded to single spaces, and bounded."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _addresses(raw: str | None, key: str) -> list[str]:
    addresses = [a.strip() for a in (raw or "").split(",") if a.strip()]
    if not addresses:
        raise ValueError(f"{key} must name at least one address, such as 'ops@example.com'")
    bad = [a for a in addresses if "@" not in a or any(c in a for c in "\r\n<> ")]
    if bad:
        raise ValueError(f"{key} must be comma-separated addresses such as 'ops@example.com', got {bad[0]!r}")
    return addresses


class Smtp:
    """Where and how to send: parsed once from `SMTP_URL` (smtp://, smtps://, user:pass optional)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            # Never echo the URL itself: it may hold a password.
            raise ValueError(
                f"SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465, "
                f"got a {parts.scheme or 'scheme-less'} URL"
            )
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        try:
            self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError("SMTP_URL has a port that is not a number") from None
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "") if parts.username else None
        self.context = ssl.create_default_context()  # loads the CA store: once per worker, not per send

    def send(self, messages: Sequence[EmailMessage]) -> None:
        """Send all messages over one connection; raises on any refusal (the job is retried)."""
        if self.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT, context=self.context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if not self.implicit_tls and client.has_extn("starttls"):
                client.starttls(context=self.context)
                client.ehlo()
            elif not self.implicit_tls and self.user:
                # A password is never sent in clear text.
                raise smtplib.SMTPNotSupportedError(
                    f"SMTP server {self.host}:{self.port} does not offer STARTTLS; refusing to send the "
                    f"password unencrypted (use smtps:// or a server with STARTTLS)"
                )
            if self.user:
                client.login(self.user, self.password or "")
            for message in messages:
                client.send_message(message)


def subject_for(event: Event) -> str:
    """What happened, in a few words: "Reply from +61409000000 to SMS 123"."""
    if event.kind is Kind.REPLY:
        return f"Reply from {event.sender or 'unknown number'} to SMS {event.message_id}"
    to = f" to {event.recipient}" if event.recipient else ""
    if event.kind is Kind.RECEIPT_OVERDUE:  # the receipt watchdog's (pipeline/watchdog.py)
        ago = event.raw.get("last_status_ago") or "time unknown"
        return f"No receipt for SMS {event.message_id}{to} (last: {event.status.value}, {ago})"
    return f"SMS {event.message_id}{to} {event.status.value}"


def body_for(event: Event) -> str:
    lines = [f"{subject_for(event)} ({event.provider}).", ""]
    if event.kind is Kind.REPLY:
        lines += ["Reply text:", event.text or "(empty)", ""]
    assert event.occurred_at is not None  # Event.__post_init__ defaults it to received_at
    for label, value in [
        ("Status", event.status.value),
        ("Provider", event.provider),
        ("Message id", event.message_id),
        ("Recipient", event.recipient),
        ("Sender", event.sender),
        ("Provider status", event.provider_status),
        ("Description", event.description),
        ("Occurred at", event.occurred_at.isoformat()),
        ("Event id", event.event_id),
    ]:
        if value:
            lines.append(f"{label}: {value}")
    return "\n".join(lines) + "\n"


class EmailHandler(Handler):
    """`SMTP_URL`, `EMAIL_FROM`, `EMAIL_TO`: a plain-text mail per event, all sent on one connection."""

    name = "email"
    max_batch = 50  # one SMTP conversation per job; a retry resends at most this many

    def __init__(self, smtp: Smtp, sender: str, to: list[str]) -> None:
        self.smtp = smtp
        self.sender = sender
        self.to = to

    @classmethod
    def from_env(cls, env: Mapping[str, str], to_key: str = "EMAIL_TO") -> EmailHandler:
        if not env.get("SMTP_URL"):
            raise ValueError("SMTP_URL must be set, such as smtp://user:pass@smtp.example.com:587")
        sender = _addresses(env.get("EMAIL_FROM") or "smshooks@localhost", "EMAIL_FROM")[0]
        return cls(Smtp(env["SMTP_URL"]), sender, _addresses(env.get(to_key), to_key))

    def message(self, subject: str, body: str) -> EmailMessage:
        """A plain-text message to this handler's recipients."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = one_line(subject)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="smshooks")
        msg.set_content(body)
        return msg

    def handle(self, event: Event) -> None:
        self.handle_batch([event])

    def handle_batch(self, events: Sequence[Event]) -> None:
        if events:
            self.smtp.send([self.message(subject_for(e), body_for(e)) for e in events])
