"""Who may post a callback: the IP allow-list, the secret, and the throttle on failed secrets.

Order of the checks, and why:
    403  the client address is not in ALLOWED_IPS (when set): nothing else is looked at
    200  a correct secret is accepted, always: a provider is never throttled, even one
         sharing an address with an attacker
    429  a wrong or missing secret from an address that already failed more than
         AUTH_FAIL_LIMIT times this minute (Retry-After: the seconds left in the minute)
    401  any other wrong or missing secret
The failure counter lives in Redis (one key per IPv4 address or IPv6 /64, expiring after the minute), so
every web process shares it. When Redis is down the throttle fails open: a wrong secret
still gets its 401, and a right one goes on to the storage step, which answers 503.

The client address is the socket's, unless TRUSTED_PROXY_COUNT proxies are declared:
then werkzeug's ProxyFix takes it from X-Forwarded-For, counting that many entries from
the right (the ones our own proxies appended); anything further left was written by the
client and is ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

from flask import Flask, Request
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from webhooks.config import Settings

from .redis_store import get_redis
from .security import is_authorized

log = logging.getLogger("webhooks.access")

WINDOW_SECONDS = 60
FAILURES_KEY = "smshooks:authfail:{}"
# INCR and set the expiry in one step; a key somehow left without one gets it again.
_COUNT_FAILURE = """
local failures = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {failures, ttl}
"""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the status, a message for the caller and headers to send."""

    status: int
    message: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Read the client address from X-Forwarded-For when TRUSTED_PROXY_COUNT proxies front the app."""
    if settings.trusted_proxy_count:
        # x_proto too: the console marks its cookie Secure when the client's request was HTTPS.
        count = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)  # type: ignore[method-assign]


def client_address(request: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address((request.remote_addr or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:203.0.113.5 from a dual-stack socket is 203.0.113.5
    return address


def throttle_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str:
    """One counter per IPv4 address, and per IPv6 /64: one host gets a whole /64 to rotate through."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def count_failure(address: str, limit: int) -> int:
    """Record a failed authentication; the seconds to wait when over `limit`, else 0 (also when Redis is down)."""
    try:
        failures, ttl = get_redis().eval(_COUNT_FAILURE, 1, FAILURES_KEY.format(address), WINDOW_SECONDS)
    except RedisError as err:
        log.warning("auth throttle unavailable (%s): not throttling", type(err).__name__)
        return 0
    return max(int(ttl), 1) if int(failures) > limit else 0


def throttled(address: str, limit: int) -> int:
    """The seconds an address must still wait after too many failures (0: it may try), without counting one."""
    try:
        key = FAILURES_KEY.format(address)
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            failures, ttl = pipe.execute()
    except RedisError:
        return 0
    return max(int(ttl), 1) if failures is not None and int(failures) > limit else 0


def admit(
    request: Request, settings: Settings, authorized: bool = False, action: str = "register the URL"
) -> Refusal | None:
    """None when the request may go on; otherwise the refusal to answer with.

    `authorized` is for an endpoint that has already checked a provider-specific form of the secret.
    """
    if settings.allowed_ips:
        address = client_address(request)
        if address is None or not any(address in net for net in settings.allowed_ips):
            return Refusal(403, f"client address {request.remote_addr!r} is not in ALLOWED_IPS")
    if authorized or is_authorized(request, settings.webhook_secret):
        return None
    address = client_address(request)  # only now: a provider with the right secret never pays for parsing it
    if settings.auth_fail_limit:
        wait = count_failure(throttle_key(address), settings.auth_fail_limit)
        if wait:
            return Refusal(
                429, f"too many failed authentications from this address; retry in {wait} s", {"Retry-After": str(wait)}
            )
    return Refusal(
        401,
        f"missing or wrong secret: {action} with ?token=<WEBHOOK_SECRET> or with it as the basic-auth password",
        {"WWW-Authenticate": 'Basic realm="smshooks"'},
    )
