"""The forward handler on its own, against a real HTTP receiver that verifies every request from the spec."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from handlers.base import DestinationGone, RetryLater
from handlers.forward import ForwardError, ForwardHandler, webhook_id
from handlers.registry import lanes
from tests.conftest import free_port
from tests.webhook_receiver import Refused, receiver, sign, verify
from webhooks.events import Event, Kind, Status

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the specification's example secret
OTHER = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="  # 26 bytes, base64


def event(message_id: str = "123", status: Status = Status.DELIVERED, **extra) -> Event:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    return Event(
        provider="redoxygen",
        kind=Kind.RECEIPT,
        status=status,
        message_id=message_id,
        received_at=now,
        recipient="+61409000000",
        raw={"SMSId": message_id, "Result": "0000"},
        **extra,
    )


def handler(url: str, **settings: str) -> ForwardHandler:
    return ForwardHandler.from_env({"FORWARD_URL": url, "FORWARD_SECRET": SECRET, **settings})


# --------------------------------------------------------------------------- the receiver's own verifier


def test_the_receivers_verifier_takes_the_specifications_example():
    # From the specification: this secret, id, timestamp and body give this signature.
    body = b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    verify(SECRET, headers, body, now=1614265330)
    with pytest.raises(Refused, match="no v1 signature"):
        verify(SECRET, headers, body.replace(b"2", b"3"), now=1614265330)
    with pytest.raises(Refused, match="more than 300 s"):
        verify(SECRET, headers, body, now=1614265330 + 301)


# --------------------------------------------------------------------------- deliveries


def test_each_delivery_is_signed_and_verifies_and_raw_is_left_out():
    with receiver(SECRET) as r:
        forward = handler(r.url)
        forward.handle_batch([event("1"), event("2", Status.FAILED)])
    accepted = r.accepted()
    assert len(accepted) == 2 and not r.refused()
    assert [a["body"]["message_id"] for a in accepted] == ["1", "2"]
    first = accepted[0]["body"]
    assert first["status"] == "delivered" and first["kind"] == "receipt" and first["recipient"] == "+61409000000"
    assert "raw" not in first  # FORWARD_RAW is off
    assert first["event_id"] == event("1").event_id
    assert accepted[0]["id"] == webhook_id([event("1")]) != accepted[1]["id"]


def test_a_receiver_with_another_secret_refuses_every_delivery():
    with receiver(OTHER) as r:
        with pytest.raises(ForwardError, match="answered 401"):
            handler(r.url).handle(event())
    assert r.refused() and r.refused()[0]["refused"] == "no v1 signature matches"


def test_a_stale_or_tampered_request_is_refused_by_the_receiver():
    body = json.dumps({"event_id": "x"}).encode()
    with receiver(SECRET) as r:
        stale = int(time.time()) - 600
        fresh = int(time.time())
        for stamp, sent in ((stale, body), (fresh, body.replace(b"x", b"y"))):
            headers = {
                "webhook-id": "msg_1",
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(SECRET, "msg_1", stamp, body),
                "Content-Type": "application/json",
            }
            assert requests.post(r.url, data=sent, headers=headers, timeout=5).status_code == 401
        good = {**headers, "webhook-signature": sign(SECRET, "msg_1", fresh, body)}
        assert requests.post(r.url, data=body, headers=good, timeout=5).status_code == 200
    assert [x.get("refused", "ok") for x in r.requests] == [
        f"webhook-timestamp {stale} is more than 300 s from now",
        "no v1 signature matches",
        "ok",
    ]


def test_raw_is_sent_with_forward_raw_and_a_batch_is_an_array():
    with receiver(SECRET) as r:
        forward = handler(r.url, FORWARD_RAW="1", FORWARD_BATCH="50")
        assert forward.batch == 50 and forward.max_batch == 500  # a job makes up to ten requests
        forward.handle_batch([event(str(i)) for i in range(3)])
    (only,) = r.accepted()
    assert isinstance(only["body"], list) and [e["message_id"] for e in only["body"]] == ["0", "1", "2"]
    assert only["body"][0]["raw"] == {"SMSId": "0", "Result": "0000"}
    assert only["id"] == webhook_id([event(str(i)) for i in range(3)])


def test_the_webhook_id_is_the_same_on_every_attempt():
    with receiver(SECRET) as r:
        r.script = [(500, {}), (500, {})]
        forward = handler(r.url)
        for _ in range(2):
            with pytest.raises(ForwardError, match="answered 500"):
                forward.handle(event())
        forward.handle(event())
    assert len({x["id"] for x in r.requests}) == 1 and [x["status"] for x in r.requests] == [500, 500, 200]


@pytest.mark.parametrize(("status", "header", "seconds"), [(429, "2", 2.0), (503, "120", 120.0)])
def test_429_and_503_with_retry_after_ask_to_be_retried_no_sooner(status, header, seconds):
    with receiver(SECRET) as r:
        r.script = [(status, {"Retry-After": header})]
        with pytest.raises(RetryLater) as raised:
            handler(r.url).handle(event())
    assert raised.value.seconds == seconds


def test_retry_after_as_an_http_date_is_read():
    when = datetime.fromtimestamp(time.time() + 30, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    with receiver(SECRET) as r:
        r.script = [(429, {"Retry-After": when})]
        with pytest.raises(RetryLater) as raised:
            handler(r.url).handle(event())
    assert 25 <= raised.value.seconds <= 31


def test_410_says_the_destination_is_gone_and_names_it_without_its_query():
    with receiver(SECRET) as r:
        r.script = [(410, {})]
        forward = handler(r.url + "?token=abcdefgh123")
        with pytest.raises(DestinationGone) as raised:
            forward.handle(event())
    assert str(raised.value) == f"{r.url} answered 410 Gone"
    assert forward.destination == r.url


class _Redirector(BaseHTTPRequestHandler):
    target = ""
    code = 307

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.code)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _redirector(target: str, code: int) -> ThreadingHTTPServer:
    handler_class = type("R", (_Redirector,), {"target": target, "code": code})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_redirect_to_another_host_is_not_followed():
    with receiver(SECRET) as r:
        # 127.0.0.1 and localhost are different hosts to the handler, as they are to a browser.
        server = _redirector(r.url.replace("127.0.0.1", "localhost"), 307)
        try:
            with pytest.raises(ForwardError, match="only 307/308 to the same host are followed"):
                handler(f"http://127.0.0.1:{server.server_port}/old").handle(event())
        finally:
            server.shutdown()
            server.server_close()
    assert r.requests == []


def test_a_303_is_not_followed_even_on_the_same_host():
    server = _redirector("/elsewhere", 303)
    try:
        with pytest.raises(ForwardError, match=r"redirected \(303\)"):
            handler(f"http://127.0.0.1:{server.server_port}/old").handle(event())
    finally:
        server.shutdown()
        server.server_close()


def test_a_receiver_that_does_not_answer_times_out():
    silent = ThreadingHTTPServer(("127.0.0.1", free_port()), type("S", (BaseHTTPRequestHandler,), {}))
    # Never served: the connection is accepted by the kernel's backlog and never answered.
    try:
        started = time.monotonic()
        with pytest.raises(ForwardError, match="did not answer within 0.5 s"):
            handler(f"http://127.0.0.1:{silent.server_port}/", FORWARD_TIMEOUT="0.5").handle(event())
        assert time.monotonic() - started < 5
    finally:
        silent.server_close()


def test_a_refused_connection_is_an_error_that_does_not_quote_the_query():
    with pytest.raises(ForwardError) as raised:
        handler(f"http://127.0.0.1:{free_port()}/in?key=sekrit-token-1").handle(event())
    assert "could not be reached (ConnectionError)" in str(raised.value)
    assert "sekrit" not in str(raised.value)


# --------------------------------------------------------------------------- settings


def test_several_urls_are_lanes_of_their_own():
    forward = handler("https://a.example/hook, https://b.example/hook?k=1,https://c.example/")
    named = lanes("forward", forward)
    assert list(named) == ["forward", "forward[2]", "forward[3]"]
    assert [h.destination for h in named.values()] == [
        "https://a.example/hook",
        "https://b.example/hook",
        "https://c.example/",
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"FORWARD_URL": ""}, "FORWARD_URL is not set"),
        ({"FORWARD_URL": "ftp://x.example/"}, "must hold http(s):// URLs"),
        ({"FORWARD_URL": "http://crm.example/hook"}, "plain http:// to another machine"),
        ({"FORWARD_SECRET": ""}, "FORWARD_SECRET is not set"),
        ({"FORWARD_SECRET": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "must start with whsec_"),
        ({"FORWARD_SECRET": "whsec_not base64!!"}, "not whsec_ followed by base64"),
        ({"FORWARD_SECRET": "whsec_c2hvcnQ="}, "is 5 bytes long"),
        ({"FORWARD_SECRET": f"{SECRET},whsec_???"}, "not whsec_ followed by base64"),
        ({"FORWARD_BATCH": "0"}, "FORWARD_BATCH must be between 1 and 1000"),
        ({"FORWARD_TIMEOUT": "soon"}, "FORWARD_TIMEOUT must be a number"),
        ({"FORWARD_RAW": "maybe"}, "FORWARD_RAW must be 1 or 0"),
    ],
)
def test_bad_settings_are_named_and_never_echo_the_secret(settings, message):
    env = {"FORWARD_URL": "https://crm.example/hook", "FORWARD_SECRET": SECRET, **settings}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        ForwardHandler.from_env(env)
    assert SECRET.removeprefix("whsec_") not in str(raised.value)


def test_plain_http_is_allowed_to_this_machine_or_when_asked():
    assert handler("http://localhost:9000/hook").destination == "http://localhost:9000/hook"
    assert handler("http://[::1]:9000/").destination.startswith("http://::1")
    assert handler("http://crm.internal/hook", FORWARD_ALLOW_HTTP="1").destination == "http://crm.internal/hook"


def test_the_first_secret_signs_and_the_others_are_accepted_for_rotation():
    with receiver(SECRET) as r:
        handler(r.url, FORWARD_SECRET=f"{SECRET}, {OTHER}").handle(event())
    assert len(r.accepted()) == 1


def test_smshooks_handlers_lists_each_url_as_a_lane_without_its_query():
    import subprocess

    from tests.conftest import process_env, venv_bin

    env = process_env(
        {
            "HANDLERS": "forward",
            "FORWARD_URL": "https://a.example/x?key=query-secret-1,https://b.example/y",
            "FORWARD_SECRET": SECRET,
        }
    )
    out = subprocess.run([venv_bin("smshooks"), "handlers"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "    forward: https://a.example/x\n    forward[2]: https://b.example/y\n" in out.stdout
    assert "query-secret-1" not in out.stdout + out.stderr


def test_a_failure_part_way_says_how_far_the_batch_got():
    from handlers.base import PartlyHandled

    with receiver(SECRET) as r:
        r.script_for["3"] = [(503, {"Retry-After": "5"})]
        with pytest.raises(PartlyHandled) as raised:
            handler(r.url).handle_batch([event(str(i)) for i in range(6)])
    assert raised.value.done == 3 and isinstance(raised.value.cause, RetryLater)
    assert [x["body"]["message_id"] for x in r.requests] == ["0", "1", "2", "3"]  # it stopped at the failure
