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
from redis import exceptions as errors


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


class DirectCommand:
    """One command at a time on connections of its own, without redis-py's per-call machinery.

    `Redis.execute_command` takes a connection from the pool (polling its socket to see that nothing
    is left unread), runs the call inside its retry loop and records it for its observability hooks:
    on the web's hot path that was a fifth of a callback's CPU under gevent (py-spy; docs/operations.md,
    "Web concurrency"). Here a connection is taken from a private stack and put back only once its
    reply has been read whole; a dropped connection is closed and the command sent once more on a
    new one, as redis-py's default retry does, so only commands safe to repeat belong here.
    """

    def __init__(self, redis: Redis) -> None:
        pool = redis.connection_pool
        self._connect = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list[Any] = []

    def __call__(self, *args: Any) -> Any:
        try:
            return self._once(args)
        except (errors.ConnectionError, errors.TimeoutError, OSError):
            return self._once(args)  # a connection Redis closed (a restart, an idle timeout): once more, anew

    def _once(self, args: tuple[Any, ...]) -> Any:
        conn = self._idle.pop() if self._idle else self._connect()
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except errors.ResponseError:
            self._idle.append(conn)  # an error reply, read whole: the connection is as good as before
            raise
        except BaseException:
            conn.disconnect()  # whatever was half sent or half read goes with it
            raise
        self._idle.append(conn)
        return reply
