"""Settings, read only from the environment (12-factor). Every name is documented in docs/configuration.md.

Each provider's own settings live with the provider (`providers/digitaleo/config.py`), built
from the same environment with the readers here (`int_setting`, `intervals_setting`).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
from collections.abc import Mapping

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///smshooks.db"
MAX_BODY_BYTES = 64 * 1024
INBOUND_EMAIL_MAX_BYTES = 1024 * 1024  # emails carry headers, HTML and quoted text: far more than a callback
MIN_SECRET_LENGTH = 16
MIN_API_TOKEN_LENGTH = 24  # API_TOKENS: bearer tokens a user's application holds, not typed into a dashboard
API_MAX_BODY_BYTES = 1024 * 1024  # POST /api/v1/sent: 1,000 messages of a SendSMS response is ~250 KB pretty-printed
REDIS_SSL_CERT_REQS = ("required", "optional", "none")  # none: a self-signed certificate (Heroku Key-Value Store)


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names it."""


def normalize_database_url(url: str) -> str:
    """Accept platform spellings (`postgres://`) and pick the psycopg 3 driver for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def int_setting(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def intervals_setting(env: Mapping[str, str], name: str, default: str) -> tuple[int, ...]:
    raw = env.get(name) or default
    if raw.strip().lower() == "none":
        return ()  # no retries: a failing job goes straight to the failed registry
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds such as {default!r}, got {raw!r}") from None
    if any(v < 0 for v in values):
        raise ConfigError(f"{name} must not contain negative seconds, got {raw!r}")
    return values


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RECEIPT_PROVIDERS = ("redoxygen", "digitaleo", "smsc", "ogangi")  # each may set <PROVIDER>_RECEIPT_DEADLINE


def duration_setting(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """Seconds, written `86400`, `30s`, `90m`, `24h` or `2d`; `off` is None (disabled)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw == "off":
        return None
    number, unit = (raw[:-1], raw[-1]) if raw[-1] in _DURATION_UNITS else (raw, "s")
    if not number.strip().isdigit() or int(number) < 1:
        raise ConfigError(
            f"{name} must be a duration such as 30s, 90m, 24h, 2d (or seconds, or off), got {env.get(name)!r}"
        )
    return int(number) * _DURATION_UNITS[unit]


def cert_reqs_setting(env: Mapping[str, str]) -> str:
    """REDIS_SSL_CERT_REQS: how a rediss:// server's certificate is checked (redis-py's ssl_cert_reqs)."""
    raw = env.get("REDIS_SSL_CERT_REQS") or "required"
    if raw.strip().lower() not in REDIS_SSL_CERT_REQS:
        raise ConfigError(f"REDIS_SSL_CERT_REQS must be one of {', '.join(REDIS_SSL_CERT_REQS)}, got {raw!r}")
    return raw.strip().lower()


def split_secrets(raw: str | None) -> tuple[str, ...]:
    """WEBHOOK_SECRET's secrets: one, or several separated by commas while a secret is rotated."""
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def api_tokens_setting(env: Mapping[str, str]) -> tuple[str, ...]:
    """API_TOKENS: bearer tokens for /api/v1/*, comma-separated (several while one is rotated)."""
    raw = env.get("API_TOKENS")
    tokens = split_secrets(raw)
    if raw and not tokens:
        raise ConfigError("API_TOKENS holds no token (only commas or spaces)")
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_API_TOKEN_LENGTH:
            which = "it is" if len(tokens) == 1 else f"token {number} of {len(tokens)} is"
            raise ConfigError(
                f"API_TOKENS: every token must be at least {MIN_API_TOKEN_LENGTH} characters ({which} "
                f"{len(token)}); `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one"
            )
    return tokens


def _networks(env: Mapping[str, str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in (env.get("ALLOWED_IPS") or "").split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"ALLOWED_IPS must be comma-separated addresses or CIDR ranges such as "
                f"'203.0.113.0/24, 2001:db8::/32', got {part.strip()!r}"
            ) from None
    return tuple(networks)


@dataclasses.dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    redis_ssl_cert_reqs: str = "required"  # for rediss:// URLs only (webhooks/redis_connection.py)
    database_url: str = normalize_database_url(DEFAULT_DATABASE_URL)
    webhook_secret: str | None = None
    handlers: tuple[str, ...] = ("database",)
    sentry_dsn: str | None = None
    dedupe_window: int = 7 * 24 * 3600  # seconds a callback's event id is remembered
    reply_match_window: int = 15 * 60  # seconds a reply's copy on another route is taken for the same reply
    phone_region: str | None = None  # ISO country for national numbers ("AU", "FR")
    retry_intervals: tuple[int, ...] = (10, 60, 300, 1800)
    batch_size: int = 500  # most events one handler job carries
    job_timeout: int = 60  # seconds a handler job may run before RQ stops it (and retries it)
    maintenance_interval: int = 30  # seconds between a worker's sweeps for jobs abandoned by dead workers
    queue_name: str = "smshooks"
    log_level: str = "INFO"
    # SMSC's account password: checks the handler's md5/sha1/crc32 (never in a repr, so never in a log)
    smsc_password: str | None = dataclasses.field(default=None, repr=False)
    ogangi_shortcodes: frozenset[str] = frozenset()  # our OGANGI short/long codes: a message to one is inbound
    inbound_email_max_bytes: int = INBOUND_EMAIL_MAX_BYTES  # largest email /inbound/email and smtpd take
    allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # empty: any client address
    trusted_proxy_count: int = 0  # proxies in front of us that append to X-Forwarded-For (1 when DYNO is set)
    auth_fail_limit: int = 30  # failed authentications per client address per minute before 429; 0: no limit
    api_tokens: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # API_TOKENS; empty: the API is off
    receipt_deadline: int | None = 24 * 3600  # seconds a message may stay non-final before receipt_overdue; None: off
    # <PROVIDER>_RECEIPT_DEADLINE overrides, as (provider, seconds or None); see deadline_for
    receipt_deadlines: tuple[tuple[str, int | None], ...] = ()

    @functools.cached_property  # split once, not on every request (a frozen dataclass still has a __dict__)
    def webhook_secrets(self) -> tuple[str, ...]:
        return split_secrets(self.webhook_secret)

    def deadline_for(self, provider: str) -> int | None:
        """Seconds a message of this provider may stay non-final (the watchdog's); None: not watched."""
        return dict(self.receipt_deadlines).get(provider, self.receipt_deadline)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        handlers = tuple(h.strip() for h in env.get("HANDLERS", "database").split(",") if h.strip())
        region = (env.get("PHONE_REGION") or "").strip().upper() or None
        settings = cls(
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            redis_ssl_cert_reqs=cert_reqs_setting(env),
            database_url=normalize_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            webhook_secret=env.get("WEBHOOK_SECRET") or None,
            handlers=handlers,
            sentry_dsn=env.get("SENTRY_DSN") or None,
            dedupe_window=int_setting(env, "DEDUPE_WINDOW", cls.dedupe_window),
            reply_match_window=int_setting(env, "REPLY_MATCH_WINDOW", cls.reply_match_window),
            phone_region=region,
            retry_intervals=intervals_setting(env, "RETRY_INTERVALS", "10,60,300,1800"),
            batch_size=int_setting(env, "BATCH_SIZE", cls.batch_size),
            job_timeout=int_setting(env, "JOB_TIMEOUT", cls.job_timeout),
            maintenance_interval=int_setting(env, "MAINTENANCE_INTERVAL", cls.maintenance_interval),
            queue_name=env.get("RQ_QUEUE") or cls.queue_name,
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            smsc_password=env.get("SMSC_PASSWORD") or None,
            ogangi_shortcodes=frozenset(
                c.strip() for c in (env.get("OGANGI_SHORTCODES") or "").split(",") if c.strip()
            ),
            inbound_email_max_bytes=int_setting(env, "INBOUND_EMAIL_MAX_BYTES", INBOUND_EMAIL_MAX_BYTES),
            allowed_ips=_networks(env),
            # Heroku sets DYNO in every dyno, and its router appends the client to X-Forwarded-For.
            trusted_proxy_count=int_setting(
                env, "TRUSTED_PROXY_COUNT", 1 if env.get("DYNO") else cls.trusted_proxy_count, minimum=0
            ),
            auth_fail_limit=int_setting(env, "AUTH_FAIL_LIMIT", cls.auth_fail_limit, minimum=0),
            receipt_deadline=duration_setting(env, "RECEIPT_DEADLINE", cls.receipt_deadline),
            receipt_deadlines=tuple(
                (p, duration_setting(env, f"{p.upper()}_RECEIPT_DEADLINE", None))
                for p in RECEIPT_PROVIDERS
                if (env.get(f"{p.upper()}_RECEIPT_DEADLINE") or "").strip()
            ),
            api_tokens=api_tokens_setting(env),
        )
        if set(settings.api_tokens) & set(settings.webhook_secrets):
            # A WEBHOOK_SECRET sits in provider dashboards and URLs; the API's tokens must be its own.
            raise ConfigError("API_TOKENS must not repeat a WEBHOOK_SECRET: give the API tokens of its own")
        secrets = settings.webhook_secrets
        if settings.webhook_secret is not None and not secrets:
            # "," or spaces would otherwise read as "no secret" and open every endpoint.
            raise ConfigError(f"WEBHOOK_SECRET holds no secret, got {settings.webhook_secret!r}")
        for number, secret in enumerate(secrets, start=1):
            if len(secret) < MIN_SECRET_LENGTH:
                # Short secrets are guessable, and the secret is scrubbed from events and logs
                # wherever it appears: a short one would also corrupt ordinary reply text.
                which = "it is" if len(secrets) == 1 else f"secret {number} of {len(secrets)} is"
                raise ConfigError(
                    f"WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters "
                    f"({which} {len(secret)}); `python3 -c 'import secrets; "
                    f"print(secrets.token_urlsafe(24))'` makes one"
                )
        if not settings.handlers:
            # With no handler, dispatched events would go nowhere: refuse rather than drop them.
            raise ConfigError("HANDLERS must name at least one handler, such as 'database'")
        if region is not None:
            import phonenumbers  # imported here: only a set region needs the check

            if region not in phonenumbers.SUPPORTED_REGIONS:
                raise ConfigError(f"PHONE_REGION must be an ISO country code such as 'AU', got {region!r}")
        return settings
