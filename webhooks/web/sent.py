"""`POST /api/v1/sent`: the user's application records its sends, so a message that never gets a receipt is known.

Error mapping (never a 5xx for anything the caller sent):
    404  API_TOKENS is unset (the API is off); 401 / 429 a missing or wrong token (tokens.py)
    413  the body is over 1 MiB, or names more than 1,000 messages
    415  a body that is not JSON
    400  the body is not a send response or the plain form, or not in the charset its Content-Type
         declares (payload.read_json, the callbacks' rule); every bad field is named
    503  Redis cannot be reached: nothing was stored, send it again (Retry-After)
    200  every message's `queued` (or `failed`) event is in Redis; a repeat is counted in `duplicates`
"""

from __future__ import annotations

from flask import Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from webhooks.config import API_MAX_BODY_BYTES
from webhooks.events import utcnow
from webhooks.providers import ParseContext, ParseError
from webhooks.providers.send_responses import TooManyMessages, parse_sent
from webhooks.telemetry.redaction import scrub

from . import tokens
from .endpoint import Responder, configured_secrets, store_and_answer
from .payload import BadPayload, declared_charset, read_body, read_json

JSON_TYPES = frozenset({"application/json", "text/plain", ""})  # curl -d sends form's type: refused with a hint


def handle_sent(responder: Responder | None = None) -> Response:
    """Authenticate, read the JSON, parse it into events, store them, answer."""
    responder = responder or Responder()
    settings = current_app.config["SETTINGS"]
    if (refusal := tokens.refuse(request, settings)) is not None:
        response = responder.error(refusal.status, refusal.message)
        response.headers.update(refusal.headers)
        return response

    secrets = configured_secrets()  # API_TOKENS among them
    request.max_content_length = API_MAX_BODY_BYTES  # this route only; the app's 64 KiB stays for callbacks
    try:
        mimetype = request.mimetype
        if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
            raise BadPayload({"_body": [f"must be JSON (Content-Type: application/json), got {mimetype!r}"]}, 415)
        body = g.smshooks_body = read_body(request, API_MAX_BODY_BYTES)  # kept for the refused log
        payload = scrub(read_json(body, declared_charset(request)), secrets)
        query = {k: v for k, v in request.args.items() if k in ("provider", "recipients", "phones")}
        events = parse_sent(payload, ParseContext(received_at=utcnow(), phone_region=settings.phone_region), query)
    except RequestEntityTooLarge:
        return responder.error(413, f"body is over {API_MAX_BODY_BYTES} bytes")
    except TooManyMessages as err:
        return responder.error(413, "too many messages in one request", err.errors)
    except BadPayload as err:
        return responder.error(err.status, "the body cannot be read", scrub(err.errors, secrets))
    except ParseError as err:
        return responder.error(400, "the body is not a send response smshooks reads", scrub(err.errors, secrets))
    return store_and_answer(events, responder, "send")
