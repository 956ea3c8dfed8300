"""`/digitaleo/ping`: the sibling of endpoint.handle_callback for a ping that carries no event.

Same secret, size and bad-input answers as every provider endpoint; instead of storing
events it records the ping (webhooks.digitaleo_sync.record_ping) and answers 200 only
once that is in Redis, 503 with Retry-After when Redis cannot be reached. No API call
is made here: the worker reads the statuses.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from flask import Response, current_app, g, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import RequestEntityTooLarge

from .digitaleo_sync import record_ping
from .endpoint import RETRY_AFTER_SECONDS, Responder
from .payload import BadPayload, decode, read_body
from .providers import ParseError, digitaleo
from .redis_store import get_ingest
from .security import matches, scrub

log = logging.getLogger("webhooks.endpoint")


def _appended_fields(secrets: tuple[str, ...]) -> tuple[bool, dict[str, Any]]:
    """Whether `token=<secret>?sms_id=N` authorizes the ping, and the fields after the `?`.

    Section 2.11 says the platform calls the registered address followed by `?sms_id=xxxx`;
    on an address that already holds `?token=<secret>`, a platform appending blindly
    makes the token read `<secret>?sms_id=xxxx`. That form is accepted too.
    """
    token, sep, appended = request.args.get("token", "").partition("?")
    if not sep:
        return False, {}
    return matches([token], secrets), dict(parse_qsl(appended))


def handle_ping(responder: Responder) -> Response:
    settings = current_app.config["SETTINGS"]
    secret = settings.webhook_secret
    appended_ok, appended = _appended_fields(settings.webhook_secrets)
    if (refused := responder.refuse(settings, authorized=appended_ok)) is not None:
        return refused
    try:
        sms_id = digitaleo.parse_ping(scrub({**appended, **decode(request, read_body(request))}, secret))
    except RequestEntityTooLarge:
        return responder.error(413, f"body is over {current_app.config['MAX_CONTENT_LENGTH']} bytes")
    except BadPayload as err:
        return responder.error(err.status, "the body cannot be read", scrub(err.errors, secret))
    except ParseError as err:
        return responder.error(400, "the ping is not what Digitaleo sends", scrub(err.errors, secret))

    ingest = get_ingest()  # the app's Redis and queue, made once
    try:
        scheduled = record_ping(ingest.redis, ingest.queue, settings.digitaleo, sms_id)
    except RedisError as err:
        log.warning("Redis unavailable, answering 503: %s", type(err).__name__)
        response = responder.error(503, "temporarily unable to record the ping; retry later")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    g.smshooks_accepted = True  # for /metrics: a recorded ping counts as accepted
    return jsonify(accepted=1, sms_id=sms_id, sync_scheduled=scheduled)
