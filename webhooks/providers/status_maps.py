"""`<PROVIDER>_STATUS_MAP`: the user's own entries in a provider's status table, read and checked at start.

`SMSC_STATUS_MAP=5:failed,6:delivered` adds to (or overrides) SMSC's table without a release.
Each code is written as the provider's parser compares it (`status_code` in each provider
module: SMSC numbers as numbers, Red Oxygen's padded to four digits, names case-insensitively),
so a map entry matches exactly the callbacks it names. Final-ness follows the status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from webhooks.config import ConfigError
from webhooks.events import Status

from . import ogangi, redoxygen, smsc
from .digitaleo import statuses as digitaleo

# A map gives receipts a status; replies are another kind of event, which a map cannot make.
MAPPABLE = (Status.SCHEDULED, Status.QUEUED, Status.SENT, Status.DELIVERED, Status.FAILED, Status.UNKNOWN)
_CHOICES = ", ".join(s.value for s in MAPPABLE)

# provider name -> (its setting, its code as the parser compares it; ValueError says why a code is not one)
SETTINGS: dict[str, tuple[str, Callable[[str], str]]] = {
    redoxygen.NAME: ("REDOXYGEN_STATUS_MAP", redoxygen.status_code),
    smsc.NAME: ("SMSC_STATUS_MAP", smsc.status_code),
    ogangi.NAME: ("OGANGI_STATUS_MAP", ogangi.status_code),
    digitaleo.NAME: ("DIGITALEO_STATUS_MAP", digitaleo.status_code),
}


def parse_status_map(setting: str, raw: str, code_of: Callable[[str], str]) -> dict[str, Status]:
    """`code:status,code:status` as {code: Status}; ConfigError names the setting and the bad entry."""
    mapping: dict[str, Status] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue  # a trailing comma
        code_text, colon, status_text = entry.rpartition(":")
        if not colon or not code_text.strip() or not status_text.strip():
            raise ConfigError(f"{setting}: {entry!r} must be code:status, such as 'DELIVRD:delivered'")
        try:
            code = code_of(code_text.strip())
        except ValueError as err:
            raise ConfigError(f"{setting}: {entry!r} {err}") from None
        name = status_text.strip().lower()
        if name in (Status.REPLIED.value, Status.RECEIVED.value):
            raise ConfigError(
                f"{setting}: {entry!r}: {name} is the status of a reply, which a status map cannot make; "
                f"use one of {_CHOICES}"
            )
        if name not in {s.value for s in MAPPABLE}:
            raise ConfigError(f"{setting}: {entry!r}: {name} is not a status, use one of {_CHOICES}")
        if code in mapping and mapping[code] != Status(name):
            raise ConfigError(f"{setting}: {entry!r} maps code {code} a second time, to another status")
        mapping[code] = Status(name)
    return mapping


def read_status_map(env: Mapping[str, str], provider: str) -> dict[str, Status]:
    """One provider's map from its `<PROVIDER>_STATUS_MAP` (empty when unset)."""
    setting, code_of = SETTINGS[provider]
    return parse_status_map(setting, env.get(setting) or "", code_of)


def read_status_maps(env: Mapping[str, str]) -> dict[str, dict[str, Status]]:
    """Every provider's map, by provider name: what `ParseContext.status_maps` holds."""
    return {provider: read_status_map(env, provider) for provider in SETTINGS}
