"""The console's settings: who may sign in, the key that signs their sessions, how long a session lasts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from webhooks.config import ConfigError, int_setting, split_secrets

MIN_PASSWORD_LENGTH = 12
MIN_SECRET_KEY_LENGTH = 32
DEFAULT_USER = "admin"  # the user name CONSOLE_PASSWORD signs in


@dataclasses.dataclass(frozen=True)
class ConsoleConfig:
    """CONSOLE_PASSWORD / CONSOLE_USERS, SECRET_KEY, CONSOLE_SESSION_HOURS; off without a password."""

    users: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)  # name -> password
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    session_hours: int = 8

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    @classmethod
    def from_env(cls, env: Mapping[str, str], webhook_secrets: tuple[str, ...] = ()) -> ConsoleConfig:
        """Read and check the settings; ConfigError names the bad one (never its value)."""
        users: dict[str, str] = {}
        if env.get("CONSOLE_PASSWORD"):
            users[DEFAULT_USER] = env["CONSOLE_PASSWORD"]
        for entry in split_secrets(env.get("CONSOLE_USERS")):
            name, sep, password = entry.partition(":")
            if not sep or not name.strip() or not password:
                raise ConfigError(
                    f"CONSOLE_USERS must be comma-separated user:password pairs; entry {len(users) + 1} is not one"
                )
            users[name.strip()] = password
        for name, password in users.items():
            if len(password) < MIN_PASSWORD_LENGTH:
                raise ConfigError(f"the console password of {name!r} must be at least {MIN_PASSWORD_LENGTH} characters")
            if password in webhook_secrets:
                # WEBHOOK_SECRET sits in every provider's dashboard: it must never open the console.
                raise ConfigError(f"the console password of {name!r} is a WEBHOOK_SECRET: choose another")
        secret_key = env.get("SECRET_KEY") or None
        if users and secret_key is None:
            raise ConfigError(
                "the console is on (CONSOLE_PASSWORD or CONSOLE_USERS) but SECRET_KEY is not set: it signs the "
                "console's session cookies; `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one"
            )
        if secret_key is not None and len(secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters")
        hours = int_setting(env, "CONSOLE_SESSION_HOURS", cls.session_hours)
        return cls(users, secret_key, hours)
