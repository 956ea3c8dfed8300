"""The flow every provider endpoint shares: verify -> read -> parse -> store in Redis -> answer.

`handle_ping` is its sibling for Digitaleo's ping, which carries no event: the same
answers, but what is written to Redis is the ping (the worker then asks the API).

Error mapping (never a 5xx for anything the caller sent):
    403  the client address is not in ALLOWED_IPS
    401  the shared secret is missing or wrong (429 once an address fails too often),
         or a provider's signature does not match
    413  the body is over 64 KiB (chunked bodies included)
    415  a Content-Type we cannot read
    400  the body is not what the provider sends (every bad field is named), or not in its charset
    503  Redis cannot be reached: nothing was stored, the provider should retry (Retry-After)
    200  every event is in Redis (or was already: a duplicate is acknowledged, not stored twice)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, current_app, g, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import RequestEntityTooLarge

from webhooks.config import Settings
from webhooks.events import Event, utcnow
from webhooks.providers import ParseContext, ParseError, SignatureError
from webhooks.providers.digitaleo import ping
from webhooks.providers.digitaleo.sync import record_ping
from webhooks.redis_connection import certificate_problem, describe
from webhooks.telemetry import live, metrics
from webhooks.telemetry.redaction import scrub

from .access import admit
from .payload import BadPayload, decode, read_body
from .redis_store import get_ingest
from .security import matches

log = logging.getLogger("webhooks.endpoint")

Parser = Callable[[Mapping[str, Any], ParseContext], list[Event]]
Decoder = Callable[[Any, bytes], dict[str, Any]]  # (request, body) -> fields
RETRY_AFTER_SECONDS = 30


class Responder:
    """How a provider wants to be answered; the default is JSON."""

    def ok(self, events: list[Event], stored: list[bool], **extra: Any) -> Response:
        return jsonify(
            **extra, accepted=sum(stored), duplicates=len(stored) - sum(stored), event_ids=[e.event_id for e in events]
        )

    def refuse(self, settings: Settings, authorized: bool = False, action: str = "register the URL") -> Response | None:
        """The answer to a caller access.admit refuses (allow-list, secret, throttle), else None."""
        refusal = admit(request, settings, authorized, action)
        if refusal is None:
            return None
        response = self.error(refusal.status, refusal.message)
        response.headers.update(refusal.headers)
        return response

    def error(self, status: int, message: str, fields: dict[str, list[str]] | None = None) -> Response:
        response = jsonify(error=message, fields=fields or {})
        response.status_code = status
        return response


def _log_unparsed(body: bytes, reason: str) -> None:
    """The raw request at debug level, so a new real-world shape can be added.

    The secret in it (the query's token, a ReplyURL) is removed by the log-record
    factory that create_app installs (telemetry/logs.py's redact_logs), as for every record.
    """
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "unparsed %s %s content-type=%r: %s; body=%s",
            request.method,
            request.full_path,
            request.content_type,
            reason,
            body.decode("utf-8", "replace"),
        )


def configured_secrets() -> tuple[str, ...]:
    """Every secret this process was configured with (create_app read them once): none is stored or answered."""
    return current_app.config["SECRETS"]


def handle_callback(parse: Parser, responder: Responder, decoder: Decoder = decode) -> Response:
    settings = current_app.config["SETTINGS"]
    secret = configured_secrets()
    if (refused := responder.refuse(settings)) is not None:
        return refused

    body = b""
    try:
        body = g.smshooks_body = read_body(request)  # for the refused log, should it come to that
        payload = scrub(decoder(request, body), secret)  # a ReplyURL carries our ?token=; a reply may quote any secret
        # STATUS_MAPS: the <PROVIDER>_STATUS_MAP overrides create_app read once (providers/status_maps.py).
        maps = current_app.config["STATUS_MAPS"]
        ctx = ParseContext(received_at=utcnow(), phone_region=settings.phone_region, status_maps=maps)
        events = parse(payload, ctx)
    except RequestEntityTooLarge:
        return responder.error(413, f"body is over {current_app.config['MAX_CONTENT_LENGTH']} bytes")
    except SignatureError as err:
        return responder.error(401, "the provider's signature does not match", scrub(err.errors, secret))
    except BadPayload as err:
        _log_unparsed(body, str(err))
        return responder.error(err.status, "the body cannot be read", scrub(err.errors, secret))
    except ParseError as err:
        _log_unparsed(body, str(err))
        return responder.error(400, "the callback is not what the provider sends", scrub(err.errors, secret))

    return store_and_answer(events, responder)


def store_and_answer(events: list[Event], responder: Responder, what: str = "callback") -> Response:
    """The 200 once every event is in Redis (duplicates acknowledged), or a 503 to retry."""
    provider = g.get("smshooks_provider")  # set by metrics.counted_as: the callback is counted in the same call
    try:
        stored = get_ingest().store(events, live.callback_count(provider) if provider else None)
    except RedisError as err:
        return _unavailable(responder, err, f"store the {what}")
    g.smshooks_live_counted = provider is not None
    metrics.events_stored(events, stored)
    return responder.ok(events, stored)


def handle_ping(responder: Responder) -> Response:
    """`/digitaleo/ping`: 200 once the ping is recorded (a sync job will ask the API), 503 when it cannot be."""
    settings = current_app.config["SETTINGS"]
    secret = configured_secrets()
    appended = ping.appended_token(request.args.get("token", ""))  # `?token=<secret>?sms_id=N`
    authorized = appended is not None and matches([appended[0]], settings.webhook_secrets)
    if (refused := responder.refuse(settings, authorized=authorized)) is not None:
        return refused
    try:
        fields = {**(appended[1] if appended else {}), **decode(request, read_body(request))}
        sms_id = ping.parse_ping(scrub(fields, secret))
    except RequestEntityTooLarge:
        return responder.error(413, f"body is over {current_app.config['MAX_CONTENT_LENGTH']} bytes")
    except BadPayload as err:
        return responder.error(err.status, "the body cannot be read", scrub(err.errors, secret))
    except ParseError as err:
        return responder.error(400, "the ping is not what Digitaleo sends", scrub(err.errors, secret))

    ingest = get_ingest()  # the app's Redis and queue, made once
    try:
        scheduled = record_ping(ingest.redis, ingest.queue, current_app.config["DIGITALEO"], sms_id)
    except RedisError as err:
        return _unavailable(responder, err, "record the ping")
    g.smshooks_accepted = True  # for /metrics: a recorded ping counts as accepted
    return jsonify(accepted=1, sms_id=sms_id, sync_scheduled=scheduled)


def _unavailable(responder: Responder, err: RedisError, doing: str) -> Response:
    """503 with Retry-After: nothing was written, the provider should send it again."""
    log.warning("Redis unavailable, answering 503: %s", describe(err))
    message = f"temporarily unable to {doing}; retry later"
    if (problem := certificate_problem(err)) is not None:
        message += f" ({problem})"  # a setting to change, not an outage: say so to whoever reads the body
    response = responder.error(503, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
