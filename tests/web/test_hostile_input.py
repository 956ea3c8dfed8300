"""Whatever arrives, the answer is a 2xx or a 4xx with a JSON error: never a 5xx (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET
from webhooks import create_app

ENDPOINTS = ["/redoxygen/receipt", "/redoxygen/reply"]
CONTENT_TYPES = [
    "application/json",
    "application/xml",
    "text/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xx",
    "text/plain",
    "",
    "application/octet-stream",
    "image/png",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded; charset=koi8-r",
    "text/xml; charset=nope",
]
FIELD = st.sampled_from(
    [
        "SMSId",
        "smsid",
        "Result",
        "DestTn",
        "Timestamp",
        "SmsId",
        "DestTN",
        "ReplyText",
        "Messages",
        "1",
        "Count",
        "token",
        "EmailId",
    ]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELD | st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)
OK = {200, 400, 413, 415}
RELAXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(response) -> None:
    assert response.status_code in OK, (response.status_code, response.data[:300])
    if response.status_code != 200:
        body = response.get_json()
        assert body["error"], body
        assert SECRET not in json.dumps(body)


@RELAXED
@given(endpoint=st.sampled_from(ENDPOINTS), body=st.binary(max_size=2000), content_type=st.sampled_from(CONTENT_TYPES))
def test_binary_junk(client, endpoint, body, content_type):
    check(
        client.post(
            f"{endpoint}?token={SECRET}", data=body, content_type=content_type, headers={"Accept": "application/json"}
        )
    )


@RELAXED
@given(endpoint=st.sampled_from(ENDPOINTS), value=JSON_VALUES)
def test_any_json(client, endpoint, value):
    check(
        client.post(
            f"{endpoint}?token={SECRET}",
            data=json.dumps(value),
            content_type="application/json",
            headers={"Accept": "application/json"},
        )
    )


@RELAXED
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    fields=st.dictionaries(FIELD | st.text(max_size=10), st.text(max_size=40), max_size=8),
)
def test_any_query_string_or_form(client, endpoint, fields):
    check(client.get(endpoint, query_string={**fields, "token": SECRET}, headers={"Accept": "application/json"}))
    check(client.post(f"{endpoint}?token={SECRET}", data=fields, headers={"Accept": "application/json"}))


@RELAXED
@given(
    header=st.text(max_size=60),
    name=st.sampled_from(["Authorization", "Content-Type", "Accept", "Content-Length", "Transfer-Encoding"]),
)
def test_any_header(client, header, name):
    try:
        response = client.post(
            f"/redoxygen/reply?token={SECRET}",
            data={"SmsId": "1", "DestTN": "+61409000000", "ReplyText": "x"},
            headers={name: header},
        )
    except (ValueError, UnicodeEncodeError):
        return  # the test client itself refuses the header (newlines, non-latin-1): no server sees it
    if response.status_code == 200:
        return
    assert response.status_code in OK | {401}, (response.status_code, response.data[:300])
    if response.mimetype == "application/json":
        assert response.get_json()["error"]
    else:
        assert b"<RESULT>100</RESULT>" in response.data


JSON_ACCEPT = {"Accept": "application/json"}
REPLY_FIELDS = {"SmsId": "1", "DestTN": "+61409000000", "ReplyText": "x"}


@RELAXED
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    number=st.integers(min_value=10**60, max_value=10**4000) | st.integers(max_value=-(10**60), min_value=-(10**4000)),
    field=FIELD,
)
def test_enormous_numbers(client, endpoint, number, field):
    body = json.dumps({**REPLY_FIELDS, "SMSId": "1", "Result": "0", field: number})
    check(client.post(f"{endpoint}?token={SECRET}", data=body, content_type="application/json", headers=JSON_ACCEPT))
    check(
        client.post(
            f"{endpoint}?token={SECRET}",
            data=f'{{"{field}": 1e{number % 100000}}}',
            content_type="application/json",
            headers=JSON_ACCEPT,
        )
    )


@RELAXED
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    depth=st.integers(min_value=1, max_value=30_000),
    opener=st.sampled_from(["[", '{"a":']),
)
def test_deep_json(client, endpoint, depth, opener):
    closer = "]" if opener == "[" else "}"
    body = (opener * depth + "1" + closer * depth).encode()
    response = client.post(
        f"{endpoint}?token={SECRET}", data=body, content_type="application/json", headers=JSON_ACCEPT
    )
    check(response)


@RELAXED
@given(
    endpoint=st.sampled_from([*ENDPOINTS, "/smsc/callback?fmt=2", "/ogangi/status", "/digitaleo/ping"]),
    depth=st.integers(min_value=30, max_value=5_000),
)
def test_deep_xml(client, endpoint, depth):
    body = ("<a>" * depth + "1" + "</a>" * depth).encode()
    sep = "&" if "?" in endpoint else "?"
    check(client.post(f"{endpoint}{sep}token={SECRET}", data=body, content_type="application/xml", headers=JSON_ACCEPT))


@RELAXED
@given(endpoint=st.sampled_from(ENDPOINTS), junk=st.binary(min_size=1, max_size=40))
def test_invalid_utf8_in_query_and_form(client, endpoint, junk):
    escaped = "".join(f"%{b:02X}" for b in junk + b"\xff")
    check(
        client.get(
            f"{endpoint}?token={SECRET}&SmsId=1&DestTN=1&ReplyText={escaped}&SMSId={escaped}&Result=0",
            headers=JSON_ACCEPT,
        )
    )
    check(
        client.post(
            f"{endpoint}?token={SECRET}",
            data=f"SmsId={escaped}&DestTN=1&ReplyText={escaped}".encode(),
            content_type="application/x-www-form-urlencoded",
            headers=JSON_ACCEPT,
        )
    )


def test_huge_flat_json_under_the_limit(client):
    body = json.dumps({f"k{i}": i for i in range(4000)} | REPLY_FIELDS)
    assert len(body) < 64 * 1024
    check(
        client.post(f"/redoxygen/reply?token={SECRET}", data=body, content_type="application/json", headers=JSON_ACCEPT)
    )


@RELAXED
@given(
    text=st.lists(
        st.sampled_from(["\r", "\n", "\r\n", "X-Injected: 1", "<b>", "</RESULT>", "&", "é", "\x00", " "]), max_size=20
    ).map("".join)
)
def test_header_injection_in_reply_text_stays_text(client, redis, text):
    redis.flushdb()  # each example starts empty: its reply is new, so it must be stored
    text = "Hi" + text  # never blank
    response = client.post(f"/redoxygen/reply?token={SECRET}", data={**REPLY_FIELDS, "ReplyText": text})
    assert response.status_code == 200, response.data
    assert "X-Injected" not in response.headers
    assert response.data.count(b"<RESULT>") == 1  # our HTML answer is not broken by the text
    stored = [json.loads(e) for e in redis.lrange("smshooks:inbox", 0, -1)]
    assert [e["text"] for e in stored] == [text]  # kept as sent


@RELAXED
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-Forwarded-For",
                "X-Forwarded-Proto",
                "Host",
                "Accept",
                "Accept-Charset",
                "Content-Encoding",
                "Cookie",
                "Expect",
                "Forwarded",
                "X-Real-IP",
                "Range",
                "If-None-Match",
                "Content-MD5",
            ]
        )
        | st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80),
        max_size=6,
    )
)
def test_odd_headers(client, headers):
    response = client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY_FIELDS, headers=headers)
    assert response.status_code < 500, (response.status_code, response.data[:300])
    if response.status_code >= 400:
        if response.mimetype == "application/json":
            assert response.get_json()["error"]
        else:
            assert b"<RESULT>100</RESULT><MESSAGE>" in response.data


def test_html_errors_say_what_is_wrong(client):
    response = client.post(f"/redoxygen/reply?token={SECRET}", data={"SmsId": "1"})
    assert response.status_code == 400
    assert b"<RESULT>100</RESULT><MESSAGE>" in response.data
    assert b"DestTN" in response.data and b"ReplyText" in response.data


# --- charsets: the Content-Type's charset is honoured for JSON, XML and forms, at every endpoint ---

CHARSETS = [("iso-8859-1", "Café déjà vu, señor"), ("windows-1251", "Да, буду в 10:00. Ёлка")]
# endpoint, the fields it is sent, the XML root, where the text lands (None: the ping stores no event)
CHARSET_ENDPOINTS = [
    ("/redoxygen/reply", {"SmsId": "1", "DestTN": "+61409000000", "ReplyText": "{}"}, "Reply", "text"),
    ("/redoxygen/receipt", {"SMSId": "5", "Result": "0000", "ResultText": "{}"}, "Receipt", "description"),
    ("/smsc/callback?fmt={fmt}", {"id": "987", "phone": "79997654321", "mes": "{}"}, "callback", "text"),
    (
        "/ogangi/status",
        {"id": "7", "to": "1", "status": "DELIVRD", "statusDescription": "{}"},
        "message",
        "description",
    ),
    ("/digitaleo/ping", {"sms_id": "12", "note": "{}"}, "ping", None),
]


def encoded(fields: dict, text: str, fmt: str, root: str, charset: str) -> bytes:
    filled = {k: v.format(text) for k, v in fields.items()}
    if fmt == "json":
        return json.dumps(filled, ensure_ascii=False).encode(charset)
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in filled.items())
    return f'<?xml version="1.0" encoding="{charset}"?><{root}>{inner}</{root}>'.encode(charset)


def stored(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


@pytest.mark.parametrize("charset,text", CHARSETS)
@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("endpoint,fields,root,field", CHARSET_ENDPOINTS)
def test_a_body_in_its_declared_charset_is_read_at_every_endpoint(
    client, redis, endpoint, fields, root, field, fmt, charset, text
):
    url = endpoint.format(fmt="3" if fmt == "json" else "2")
    body = encoded(fields, text, fmt, root, charset)
    assert text.encode("utf-8") not in body  # really another charset
    content_type = f"application/{fmt}; charset={charset}"
    sep = "&" if "?" in url else "?"
    response = client.post(f"{url}{sep}token={SECRET}", data=body, content_type=content_type, headers=JSON_ACCEPT)
    assert response.status_code == 200, response.data
    if field is None:
        assert response.get_json()["sms_id"] == "12"
    else:
        [event] = stored(redis)
        assert event[field] == text


API_TOKEN = "api-token-for-charset-tests-0123"


@pytest.mark.parametrize("charset,text", CHARSETS)
def test_a_send_in_its_declared_charset_is_read_by_the_api(env, redis, charset, text):
    api = create_app({**env, "API_TOKENS": API_TOKEN}).test_client()
    sent = [{"provider": "ogangi", "message_id": "o-1", "note": text}]
    body = json.dumps(sent, ensure_ascii=False).encode(charset)
    assert text.encode("utf-8") not in body  # really another charset
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    response = api.post("/api/v1/sent", data=body, content_type=f"application/json; charset={charset}", headers=auth)
    assert response.status_code == 200, response.data
    [event] = stored(redis)
    assert (event["message_id"], event["raw"]["note"]) == ("o-1", text)
    for content_type, named in [
        ("application/json; charset=nope-42", "unknown charset 'nope-42'"),
        ("application/json; charset=utf-8", "body is not valid utf-8"),
    ]:
        refused = api.post("/api/v1/sent", data=body, content_type=content_type, headers=auth)
        assert refused.status_code == 400, refused.data
        assert refused.get_json()["fields"]["_body"][0].startswith(named), refused.get_json()


def test_the_content_type_charset_wins_over_the_xml_declaration(client, redis):
    text = "Да, буду"
    fields = f"<SmsId>1</SmsId><DestTN>1</DestTN><ReplyText>{text}</ReplyText>"
    body = f'<?xml version="1.0" encoding="utf-8"?><Reply>{fields}</Reply>'
    response = client.post(
        f"/redoxygen/reply?token={SECRET}",
        data=body.encode("koi8-r"),
        content_type="text/xml; charset=koi8-r",
        headers=JSON_ACCEPT,
    )
    assert response.status_code == 200, response.data
    assert stored(redis)[0]["text"] == text


def test_an_undeclared_xml_body_follows_its_own_declaration(client, redis):
    text = "Ёлка"
    fields = f"<SmsId>1</SmsId><DestTN>1</DestTN><ReplyText>{text}</ReplyText>"
    body = f'<?xml version="1.0" encoding="windows-1251"?><Reply>{fields}</Reply>'
    response = client.post(
        f"/redoxygen/reply?token={SECRET}", data=body.encode("cp1251"), content_type="text/xml", headers=JSON_ACCEPT
    )
    assert response.status_code == 200, response.data
    assert stored(redis)[0]["text"] == text


def test_smsc_body_charset_wins_over_its_url_charset_for_json(client, redis):
    body = json.dumps({"id": "1", "phone": "79997654321", "mes": "Привет"}, ensure_ascii=False).encode("cp1251")
    response = client.post(
        f"/smsc/callback?token={SECRET}&fmt=3&charset=utf-8",
        data=body,
        content_type="application/json; charset=windows-1251",
        headers=JSON_ACCEPT,
    )
    assert response.status_code == 200, response.data
    assert stored(redis)[0]["text"] == "Привет"


ENDPOINT_URLS = ["/redoxygen/reply", "/redoxygen/receipt", "/smsc/callback?fmt=3", "/ogangi/status", "/digitaleo/ping"]


@pytest.mark.parametrize("url", ENDPOINT_URLS)
@pytest.mark.parametrize(
    "content_type,body,named",
    [
        ("application/json; charset=nope-42", b'{"a": "b"}', "unknown charset 'nope-42'"),
        ("application/xml; charset=rot13", b"<a>b</a>", "unknown charset 'rot13'"),
        ("application/json; charset=unicode_escape", b'{"a": "b"}', "unknown charset 'unicode_escape'"),
        ("application/json; charset=windows-1253", b'{"a": "\xaa"}', "body is not valid windows-1253"),
        ("text/xml; charset=utf-8", b"<a>\xff</a>", "body is not valid utf-8"),
    ],
)
def test_an_unknown_charset_or_bytes_not_in_it_is_a_400_naming_it(client, redis, url, content_type, body, named):
    sep = "&" if "?" in url else "?"
    response = client.post(f"{url}{sep}token={SECRET}", data=body, content_type=content_type, headers=JSON_ACCEPT)
    assert response.status_code == 400, response.data
    assert response.get_json()["fields"]["_body"][0].startswith(named), response.get_json()
    assert stored(redis) == []
