"""Whatever email arrives, it becomes events (an `unknown` one at worst) or a 4xx: never an exception (hypothesis)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET
from tests.email_samples import REDOXYGEN_RECEIPT, UNKNOWN, digitaleo_response, redoxygen_reply_alternative
from webhooks.email.parse import parse_email
from webhooks.events import EVENT_SCHEMA
from webhooks.providers import ParseContext

RELAXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CTX = ParseContext(received_at=datetime(2024, 9, 20, tzinfo=timezone.utc), phone_region="AU")
SAMPLES = [
    REDOXYGEN_RECEIPT,
    UNKNOWN,
    redoxygen_reply_alternative(),
    digitaleo_response("Response: yes\r\n"),
    digitaleo_response("<p>Response: oui</p>", subtype="html", encoding="base64", charset="koi8-r"),
]
# Lines an attacker or a broken mail server might splice in.
LINES = st.sampled_from(
    [
        b"SMSId: ",
        b"Result: 0000",
        b"ReplyText:",
        b"Timestamp: 20x",
        b"Content-Type: text/html",
        b"Content-Transfer-Encoding: base64",
        b"Content-Type: multipart/mixed; boundary=b",
        b"--b",
        b"=?utf-8?b?////?=",
        b"charset=nope",
        b"\xff\xfe",
        b"<td>",
        b"&#xD800;",
        b"",
        b"-- ",
        b"Subject: Response from +1 to SMS #",
        b"DestTN: \xd9\xa3",
    ]
)


def mutate(sample: bytes, inserts: list[tuple[int, bytes]]) -> bytes:
    lines = sample.split(b"\r\n")
    for position, line in inserts:
        lines.insert(position % (len(lines) + 1), line)
    return b"\r\n".join(lines)


def check_events(raw: bytes) -> None:
    events = parse_email(raw, CTX, SECRET)
    assert events
    wire = EVENT_SCHEMA.dump(events, many=True)
    assert SECRET not in json.dumps(wire)
    assert EVENT_SCHEMA.load(wire, many=True) == events


@RELAXED
@given(raw=st.binary(max_size=3000))
def test_binary_junk_parses(raw):
    check_events(raw)


@RELAXED
@given(sample=st.sampled_from(SAMPLES), inserts=st.lists(st.tuples(st.integers(0, 60), LINES), max_size=8))
def test_mutated_samples_parse(sample, inserts):
    check_events(mutate(sample, inserts))


@RELAXED
@given(
    sample=st.sampled_from(SAMPLES),
    inserts=st.lists(st.tuples(st.integers(0, 60), LINES), max_size=8),
    content_type=st.sampled_from(
        [
            "message/rfc822",
            "text/plain",
            "",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            "multipart/form-data",
        ]
    ),
)
def test_endpoint_answers_2xx_or_4xx(client, sample, inserts, content_type):
    response = client.post(f"/inbound/email?token={SECRET}", data=mutate(sample, inserts), content_type=content_type)
    assert response.status_code in {200, 400, 413, 415}, (response.status_code, response.data[:300])
    assert SECRET not in response.get_data(as_text=True)
