"""`smshooks smtpd`: an SMTP server (aiosmtpd) to point an MX record or a forwarding rule at.

It takes mail only for SMTPD_RECIPIENTS (550 at RCPT for anyone else), refuses messages over
INBOUND_EMAIL_MAX_BYTES (advertised with SIZE; 552), parses each message with
email/parse.py's parse_email and stores the events with the same Lua ingest as the web
endpoint. It answers 250 only once the events are in Redis; when Redis is down (or anything
else goes wrong) it answers 451, a temporary failure, so the sending MTA keeps the message
and tries again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import socket
from collections.abc import Mapping
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.exceptions import RedisError

from webhooks.config import ConfigError, Settings, int_setting, split_secrets
from webhooks.events import Status, utcnow
from webhooks.pipeline.queueing import Ingest, queue_for
from webhooks.providers import ParseContext
from webhooks.providers.status_maps import read_status_maps
from webhooks.redis_connection import describe
from webhooks.telemetry.redaction import secrets_from_env
from webhooks.web.redis_store import connect

from .parse import parse_email

log = logging.getLogger("webhooks.smtpd")


@dataclasses.dataclass(frozen=True)
class SmtpdSettings:
    host: str
    port: int
    recipients: frozenset[str]  # lower-cased addresses; "@example.com" takes the whole domain
    status_maps: Mapping[str, Mapping[str, Status]] = dataclasses.field(default_factory=dict)  # <PROVIDER>_STATUS_MAP
    secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # every configured secret: none is stored

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpdSettings:
        recipients = frozenset(a.strip().lower() for a in (env.get("SMTPD_RECIPIENTS") or "").split(",") if a.strip())
        if not recipients:
            # Taking mail for any address would make this an open sink for whoever finds the port.
            raise ConfigError(
                "SMTPD_RECIPIENTS must list the addresses smtpd accepts, such as "
                "'sms-replies@hooks.example.com' (comma-separated; '@hooks.example.com' for a domain)"
            )
        bad = sorted(a for a in recipients if "@" not in a)
        if bad:
            raise ConfigError(f"SMTPD_RECIPIENTS must hold email addresses or '@domain' entries, got {bad}")
        return cls(
            host=env.get("SMTPD_HOST") or "0.0.0.0",
            port=int_setting(env, "SMTPD_PORT", 2525),
            recipients=recipients,
            status_maps=read_status_maps(env),
            secrets=secrets_from_env(env, split_secrets(env.get("WEBHOOK_SECRET"))),
        )

    def accepts(self, address: str) -> bool:
        address = address.strip().lower()
        return address in self.recipients or "@" + address.rpartition("@")[2] in self.recipients


class InboundHandler:
    """aiosmtpd hooks: check each recipient, then store the message's events before saying 250."""

    def __init__(self, settings: Settings, smtpd: SmtpdSettings, ingest: Ingest) -> None:
        self.settings = settings
        self.smtpd = smtpd
        self.ingest = ingest

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.smtpd.accepts(address):
            return f"550 5.1.1 <{address}>: no such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            # Parsing and the Redis round trip block: a thread keeps other SMTP sessions moving.
            events, stored = await asyncio.to_thread(self.store, raw)
        except RedisError as err:
            log.warning("Redis unavailable, answering 451: %s", describe(err))
            return "451 4.3.0 temporarily unable to store the message; try again later"
        except Exception:
            log.exception("unexpected error storing a message, answering 451")
            return "451 4.3.0 temporarily unable to store the message; try again later"
        log.info(
            "stored %d event(s) (%d duplicate) from %s", sum(stored), len(stored) - sum(stored), envelope.mail_from
        )
        return f"250 2.0.0 OK: {len(events)} event(s)"

    def store(self, raw: bytes) -> tuple[list[Any], list[bool]]:
        """Parse and store one message; raises RedisError when it is not stored."""
        ctx = ParseContext(
            received_at=utcnow(), phone_region=self.settings.phone_region, status_maps=self.smtpd.status_maps
        )
        events = parse_email(raw, ctx, self.smtpd.secrets or self.settings.webhook_secret)
        stored = self.ingest.store(events)
        return events, stored


def run(settings: Settings, smtpd: SmtpdSettings) -> int:
    """Serve until SIGTERM or SIGINT."""
    redis = connect(settings)
    handler = InboundHandler(
        settings,
        smtpd,
        Ingest(redis, queue_for(redis, settings.queue_name), settings.dedupe_window, settings.reply_match_window),
    )

    # aiosmtpd looks the name up for every connection unless given one; a slow resolver would stall each.
    hostname = socket.getfqdn()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                handler,
                data_size_limit=settings.inbound_email_max_bytes,
                ident="smshooks smtpd",
                hostname=hostname,
                loop=loop,
            ),
            host=smtpd.host,
            port=smtpd.port,
        )
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "smtpd listening on %s:%d for %s (at most %d bytes a message)",
            smtpd.host,
            smtpd.port,
            ", ".join(sorted(smtpd.recipients)),
            settings.inbound_email_max_bytes,
        )
        async with server:
            await stop.wait()

    try:
        asyncio.run(serve())
    except OSError as err:  # the port is taken, or the host is not ours
        log.error("smtpd cannot listen on %s:%d: %s", smtpd.host, smtpd.port, err)
        return 1
    finally:
        redis.close()
    return 0
