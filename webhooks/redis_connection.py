"""Every Redis client smshooks makes, built in one place from REDIS_URL and REDIS_SSL_CERT_REQS.

Heroku Key-Value Store gives `REDIS_URL=rediss://:<password>@host:port`: TLS only, with a
self-signed certificate, which redis-py's default (`ssl_cert_reqs="required"`) refuses. Heroku
rotates the URL, so a user cannot add `?ssl_cert_reqs=none` to it: the setting says how the
certificate is checked instead. It applies to rediss:// URLs only (redis-py refuses the
argument for a plain connection).

A refused certificate reaches the caller as a plain `ConnectionError`, which reads like "Redis
is down"; `certificate_problem` finds the verification error in its chain and says which
setting fixes it, for the web's 503, the worker's log and the CLI.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from redis import Redis


def redis_client(url: str, cert_reqs: str = "required", **options: Any) -> Redis:
    """A client for `url`; a rediss:// server's certificate is checked as `cert_reqs` says."""
    if urlsplit(url).scheme == "rediss":
        options["ssl_cert_reqs"] = cert_reqs
    return Redis.from_url(url, **options)


def certificate_problem(err: BaseException) -> str | None:
    """What is wrong and what fixes it when `err` comes from a refused TLS certificate, else None."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "not trusted"
            # The reason comes from OpenSSL ("self-signed certificate", "Hostname mismatch, ...");
            # it never carries the URL, so never its password.
            return (
                f"the TLS certificate of Redis failed verification ({reason}): if it is self-signed, "
                "as on Heroku Key-Value Store, set REDIS_SSL_CERT_REQS=none"
            )
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def describe(err: BaseException) -> str:
    """For a log line: the error's class, and what fixes it when a certificate was refused."""
    problem = certificate_problem(err)
    return type(err).__name__ if problem is None else f"{type(err).__name__}: {problem}"
