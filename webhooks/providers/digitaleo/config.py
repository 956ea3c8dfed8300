"""Digitaleo settings: API credentials and how pings become API calls. Documented in docs/configuration.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webhooks.config import ConfigError, int_setting
from webhooks.events import Status
from webhooks.providers.status_maps import read_status_map

from . import statuses

DEFAULT_TOKEN_URL = "https://oauth.messengeo.net/token"
DEFAULT_API_URL = "https://sms.messengeo.net/rest"
MODES = ("queue", "lookup")


@dataclasses.dataclass(frozen=True)
class DigitaleoConfig:
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)  # never in a repr, log or report
    token_url: str = DEFAULT_TOKEN_URL
    api_url: str = DEFAULT_API_URL
    mode: str = "queue"  # "queue": drain the status queue; "lookup": ask about the pinged ids
    ping_delay: int = 2  # seconds pings are gathered before one sync job runs
    safety_interval: int = 300  # seconds between safety syncs catching lost pings; 0: none
    timezone: str = "Europe/Paris"  # the account's zone: API dates carry none
    timeout: int = 10  # seconds for each connect and each read
    lookup_batch: int = 400  # ids per /smsstatus request: ~4.4 kB of URL, ~1,600 statuses (a page is 2,000)
    status_map: Mapping[str, Status] = dataclasses.field(default_factory=dict)  # DIGITALEO_STATUS_MAP, for the sync

    @property
    def enabled(self) -> bool:
        """True when the API can be called: both credentials are set."""
        return bool(self.client_id and self.client_secret)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DigitaleoConfig:
        mode = (env.get("DIGITALEO_MODE") or cls.mode).strip().lower()
        if mode not in MODES:
            raise ConfigError(f"DIGITALEO_MODE must be one of {', '.join(MODES)}, got {mode!r}")
        timezone = (env.get("DIGITALEO_TIMEZONE") or cls.timezone).strip()
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"DIGITALEO_TIMEZONE must be an IANA zone such as 'Europe/Paris', got {timezone!r}"
            ) from None
        return cls(
            client_id=env.get("DIGITALEO_CLIENT_ID") or None,
            client_secret=env.get("DIGITALEO_CLIENT_SECRET") or None,
            token_url=env.get("DIGITALEO_TOKEN_URL") or DEFAULT_TOKEN_URL,
            api_url=(env.get("DIGITALEO_API_URL") or DEFAULT_API_URL).rstrip("/"),
            mode=mode,
            ping_delay=int_setting(env, "DIGITALEO_PING_DELAY", cls.ping_delay, minimum=0),
            safety_interval=int_setting(env, "DIGITALEO_SAFETY_INTERVAL", cls.safety_interval, minimum=0),
            timezone=timezone,
            timeout=int_setting(env, "DIGITALEO_TIMEOUT", cls.timeout),
            lookup_batch=int_setting(env, "DIGITALEO_LOOKUP_BATCH", cls.lookup_batch),
            status_map=read_status_map(env, statuses.NAME),
        )
