"""The HTTP surface: one route per provider callback, plus /healthz and JSON errors everywhere."""

from __future__ import annotations

import functools
from html import escape

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from webhooks.email.endpoint import handle_inbound_email
from webhooks.pipeline.queueing import INBOX
from webhooks.providers import ogangi, redoxygen, smsc
from webhooks.redis_connection import describe
from webhooks.telemetry import metrics
from webhooks.web import openapi, read_api
from webhooks.web.endpoint import Responder, handle_callback, handle_ping
from webhooks.web.metrics_view import serve as serve_metrics
from webhooks.web.payload import decode
from webhooks.web.redis_store import get_redis
from webhooks.web.sent import handle_sent

bp = Blueprint("webhooks", __name__)


class ResultCodeResponder(Responder):
    """Red Oxygen reads `<RESULT>000</RESULT>` from an HTML body; JSON clients (Accept) get JSON."""

    def __init__(self, ok_code: str, refused_code: str) -> None:
        self.ok_code = ok_code
        self.refused_code = refused_code

    @staticmethod
    def _wants_json() -> bool:
        return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"

    def ok(self, events, stored):
        if self._wants_json():
            return super().ok(events, stored, result=self.ok_code)
        return Response(f"<html><body><RESULT>{self.ok_code}</RESULT></body></html>", mimetype="text/html")

    def error(self, status, message, fields=None):
        if self._wants_json():
            return super().error(status, message, fields)
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in (fields or {}).items())
        text = escape(f"{message}: {detail}" if detail else message)
        return Response(
            f"<html><body><RESULT>{self.refused_code}</RESULT><MESSAGE>{text}</MESSAGE></body></html>",
            status=status,
            mimetype="text/html",
        )


_REDOXYGEN = ResultCodeResponder(redoxygen.RESULT_OK, redoxygen.RESULT_REFUSED)


@bp.route("/redoxygen/receipt", methods=["GET", "POST"])
@metrics.counted_as("redoxygen")  # callbacks by provider, outcome and status, for /metrics
def redoxygen_receipt() -> Response:
    return handle_callback(redoxygen.parse_receipt, _REDOXYGEN)


@bp.route("/redoxygen/reply", methods=["GET", "POST"])
@metrics.counted_as("redoxygen")  # callbacks by provider, outcome and status, for /metrics
def redoxygen_reply() -> Response:
    return handle_callback(redoxygen.parse_reply, _REDOXYGEN)


@bp.route("/smsc/callback", methods=["GET", "POST"])
@metrics.counted_as("smsc")  # callbacks by provider, outcome and status, for /metrics
def smsc_callback() -> Response:
    # SMSC names the charset in the handler URL (`?charset=`): decode reads the query with it, and
    # the body when its Content-Type names none. The checksum is over the bytes SMSC sent.
    charset = smsc.url_charset(request.args.get("charset"), request.args.get("fmt"))
    parse = functools.partial(
        smsc.parse_callback,
        password=current_app.config["SETTINGS"].smsc_password,
        charset=(request.mimetype_params.get("charset") or charset or "utf-8").strip(),
    )
    return handle_callback(parse, Responder(), decoder=functools.partial(decode, charset=charset))


@bp.route("/ogangi/status", methods=["POST"])
@metrics.counted_as("ogangi")  # callbacks by provider, outcome and status, for /metrics
def ogangi_status() -> Response:
    parse = functools.partial(ogangi.parse_notification, shortcodes=current_app.config["SETTINGS"].ogangi_shortcodes)
    # OGANGI's documented XML is root-less fragments (`<input>…</input> <status>…`): give them a root.
    return handle_callback(parse, Responder(), decoder=lambda req, body: decode(req, ogangi.rooted(body)))


@bp.route("/inbound/email", methods=["POST"])
@bp.route("/inbound/email/mime", methods=["POST"])  # Mailgun posts the raw message only to a URL ending in "mime"
@metrics.counted_as("email")
def inbound_email() -> Response:
    return handle_inbound_email()


@bp.route("/digitaleo/ping", methods=["GET", "POST"])
@metrics.counted_as("digitaleo")
def digitaleo_ping() -> Response:
    return handle_ping(Responder())


@bp.route("/api/v1/sent", methods=["POST"])
@metrics.counted_as("api")  # the user's application, not a provider: its own label in /metrics
def api_sent() -> Response:
    return handle_sent()


@bp.route("/api/v1/messages/<provider>/<path:message_id>")
def api_message(provider: str, message_id: str) -> Response:
    return read_api.message(provider, message_id)


@bp.route("/api/v1/events")
def api_events() -> Response:
    return read_api.events()


@bp.route("/healthz")
def healthz() -> Response:
    try:
        inbox = get_redis().llen(INBOX)
    except RedisError as err:
        response = jsonify(status="unavailable", redis=f"unreachable ({describe(err)})")
        response.status_code = 503
        return response
    handlers = list(current_app.config["SETTINGS"].handlers)
    broken = current_app.config.get("BROKEN_HANDLERS") or {}
    if broken:  # still 200: callbacks are accepted and stored, the other handlers run (docs/operations.md)
        return jsonify(status="degraded", redis="ok", inbox=inbox, handlers=handlers, broken=broken)
    return jsonify(status="ok", redis="ok", inbox=inbox, handlers=handlers)


@bp.route("/metrics")
def metrics_endpoint() -> Response:
    return serve_metrics()


@bp.route("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi.document())


def json_errors(app: Flask) -> None:
    """Werkzeug's error pages are HTML; every error here is JSON."""

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        response = jsonify(error=err.description or err.name, status=err.code)
        response.status_code = err.code or 500
        if isinstance(err, MethodNotAllowed) and err.valid_methods:
            response.headers["Allow"] = ", ".join(err.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        app.logger.exception("unexpected error")  # Sentry, when configured, gets it too
        response = jsonify(error="internal error", status=500)
        response.status_code = 500
        return response
