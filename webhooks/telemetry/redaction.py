"""Keeping secrets in: what leaves the process loses them, at two strengths.

- `redact` / `scrub`: the configured secrets only (every WEBHOOK_SECRET, or what
  `secrets_from_env` found), for events, error bodies, logs and fallback emails, whose
  provider data must keep its shape.
- `scrub_value`: everything below, for Sentry reports, which need no phone number or credential.

The rules of `scrub_value`, applied to every string in the event (message, exception values,
stack-frame variables, breadcrumbs, extra, tags, request data; keys included):

- every configured secret becomes `[secret]`: each of WEBHOOK_SECRET's secrets and API_TOKENS'
  tokens, the value of every environment variable whose name says it is secret (`*SECRET*`, `*PASSWORD*`,
  `*TOKEN*`, `*API_KEY*` and similar), and the password of every URL in the environment
  (`DATABASE_URL`, `REDIS_URL`, an SMTP URL, ...);
- a password in any URL: `scheme://user:pass@host` becomes `scheme://user:***@host`;
- credentials written as `name=value` or `"name": "value"` (token, access_token, client_secret,
  password, api_key, ...) and `Bearer`/`Basic` credentials lose their value;
- the value under a sensitive key (Authorization, Cookie, Set-Cookie, password, secret,
  token, ...) becomes `[Filtered]`;
- phone numbers keep only their last 3 digits: a run of 8 to 15 digits, with or without a
  leading `+`, that is not part of a longer word or number (`+61409000123` -> `+********123`).
  A 10- or 13-digit run starting with 1 and no `+` is left alone: that is a Unix time in
  seconds or milliseconds, and no valid phone number is written that way. Digits inside ids
  and hashes (next to letters, other digits, `_`, `-` or `.`) and ISO timestamps are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from webhooks.config import split_secrets

FILTERED = "[Filtered]"
# WEBHOOK_URL: an incoming-webhook URL (SLACK_WEBHOOK_URL) is itself the credential that posts to it.
SECRET_ENV_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|WEBHOOK_URL")
# Our own secret settings, named here so that they stay secret whatever becomes of the pattern above.
SECRET_SETTINGS = frozenset({"WEBHOOK_SECRET", "API_TOKENS", "SECRET_KEY", "CONSOLE_PASSWORD"})
MIN_SCRUBBED_LENGTH = 6  # a shorter "secret" (a port, "true") would mangle ordinary text and protect nothing

SENSITIVE_KEY = re.compile(
    r"^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[_-]?key|password|passwd|pass|"
    r"secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|"
    r"session|sessionid|csrftoken|private[_-]?key|smtp[_-]?password|webhook[_-]?secret)$",
    re.IGNORECASE,
)
URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)(?P<password>[^\s/?#@]+)(?=@)")
CREDENTIAL_PAIR = re.compile(
    r"""(?P<head>\b(?:access_token|refresh_token|id_token|client_secret|token|password|passwd|secret|api_key|apikey)"""
    r"""["']?\s*[=:]\s*["']?)(?P<value>[^\s"'&,;}\]\[]+)""",
    re.IGNORECASE,
)
AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=-]{6,})")
PHONE = re.compile(r"(?<![\w.+-])(?P<plus>\+?)(?P<digits>[0-9]{8,15})(?![\w-]|\.[0-9])")
PHONE_KEY = re.compile(r"phone|msisdn|recipient|sender|desttn|mobile|^to$|^from$", re.IGNORECASE)


QUERY_CREDENTIAL = re.compile(r"^(?:key|sig|signature|auth|code)$", re.IGNORECASE)


# A token-like path segment of a webhook URL (Slack's /services/T…/B…/<token>): the URL is the credential.
TOKEN_SEGMENT_LENGTH = 16


def _url_credentials(value: str, webhook: bool = False) -> set[str]:
    """The secrets a URL setting carries: its password, query values named like credentials (`?key=`), and
    for a webhook URL (`*_WEBHOOK_URL`) its path and every token-like segment of it, which an error may quote alone."""
    found: set[str] = set()
    for url in value.split(","):
        try:
            parts = urlsplit(url.strip())
            password = parts.password
        except ValueError:
            continue
        if password:
            found.add(password)
        if webhook and parts.path.strip("/"):
            found.add(parts.path)
            found.update(seg for seg in parts.path.split("/") if len(seg) >= TOKEN_SEGMENT_LENGTH)
        for name, item in parse_qsl(parts.query):
            if SENSITIVE_KEY.match(name) or QUERY_CREDENTIAL.match(name):
                found.add(item)
    return found


def secrets_from_env(env: Mapping[str, str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Every secret this process was configured with, longest first (so no secret is left half-replaced)."""
    found = {s for s in extra if s}
    for name, value in env.items():
        if not value:
            continue
        if name in SECRET_SETTINGS or SECRET_ENV_NAME.search(name.upper()):
            found.update(part.strip() for part in value.split(",") if part.strip())
        if name == "CONSOLE_USERS":  # user:password pairs: the passwords (and the whole pairs) are secret
            pairs = [part.strip() for part in value.split(",") if part.strip()]
            found.update(pairs)
            found.update(password for pair in pairs if (password := pair.partition(":")[2]))
        if "://" in value:
            found.update(_url_credentials(value, webhook=name.upper().endswith("WEBHOOK_URL")))
    return tuple(sorted((s for s in found if len(s) >= MIN_SCRUBBED_LENGTH), key=len, reverse=True))


def mask_phone(match: re.Match[str]) -> str:
    plus, digits = match.group("plus"), match.group("digits")
    if not plus and len(digits) in (10, 13) and digits[0] == "1":
        return match.group(0)  # a Unix time (seconds or ms), not a phone number
    return plus + "*" * (len(digits) - 3) + digits[-3:]


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with secrets, URL passwords, credentials and phone numbers removed."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[secret]")
    text = URL_PASSWORD.sub(r"\g<head>***", text)
    text = CREDENTIAL_PAIR.sub(
        lambda m: m.group(0) if m.group("value").startswith("*") else m.group("head") + FILTERED, text
    )
    text = AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {FILTERED}", text)
    return PHONE.sub(mask_phone, text)


def scrub_value(value: Any, secrets: tuple[str, ...], key: str = "") -> Any:
    """`value` (nested dicts, lists, strings, numbers) scrubbed by the rules above."""
    if key and SENSITIVE_KEY.match(key) and value not in (None, "", [], {}):
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, Mapping):
        return {scrub_text(str(k), secrets): scrub_value(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, str) for v in value) and SENSITIVE_KEY.match(value[0]):
            return [value[0], FILTERED]  # a header given as a [name, value] pair
        return [scrub_value(v, secrets, key) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and key and PHONE_KEY.search(key):
        return scrub_text(str(value), secrets)  # a phone number sent as a JSON number
    return value


# --------------------------------------------------------------------------- the configured secrets alone
# What callbacks, error bodies and logs lose: only the secrets themselves, so provider data keeps its shape.

Secrets = str | Iterable[str] | None  # WEBHOOK_SECRET as configured ("new,old"), or the secrets themselves


def secret_list(secrets: Secrets) -> tuple[str, ...]:
    """The configured secrets as a tuple, whether given as WEBHOOK_SECRET's text or already split."""
    if not secrets:
        return ()
    if isinstance(secrets, str):
        return split_secrets(secrets)
    return tuple(s for s in secrets if s)


def redact(text: str, secrets: Secrets) -> str:
    """`text` with every secret replaced, for anything that is logged or returned."""
    if not text:
        return text
    for secret in secret_list(secrets):
        text = text.replace(secret, "[secret]")
    return text


def scrub(value: Any, secrets: Secrets) -> Any:
    """`value` (str, dict or list, nested) with every secret redacted from every string, keys included."""
    listed = secret_list(secrets)
    return _scrubbed(value, listed) if listed else value


def _scrubbed(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "[secret]")
        return value
    if isinstance(value, dict):
        return {_scrubbed(k, secrets): _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v, secrets) for v in value]
    return value
