"""<PROVIDER>_STATUS_MAP: each provider's override through its real endpoint, the email path, and refused at start."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.conftest import SECRET, run_worker
from tests.digitaleo_standin import DigitaleoStandIn
from tests.email_samples import REDOXYGEN_RECEIPT
from webhooks import create_app
from webhooks.config import ConfigError
from webhooks.email.smtpd import SmtpdSettings
from webhooks.events import Status
from webhooks.pipeline.jobs import Runtime
from webhooks.providers import smsc
from webhooks.providers.digitaleo import sync as digitaleo_sync
from webhooks.providers.digitaleo.api import make_session
from webhooks.providers.status_maps import read_status_maps

JSON = {"Accept": "application/json"}


def inbox(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


def summary(event: dict) -> tuple[str, str, bool, str]:
    return event["kind"], event["status"], event["final"], event["provider_status"]


# Reading the maps ---------------------------------------------------------------------------


def test_codes_are_kept_as_each_parser_compares_them():
    maps = read_status_maps(
        {
            "REDOXYGEN_STATUS_MAP": "11:delivered, 2011:Queued,",
            "SMSC_STATUS_MAP": "5:failed,06:delivered,-1:sent,+7:unknown",
            "OGANGI_STATUS_MAP": "delivrd:failed,Sent to Carrier:queued",
            "DIGITALEO_STATUS_MAP": "NO:failed",
        }
    )
    assert maps == {
        "redoxygen": {"0011": Status.DELIVERED, "2011": Status.QUEUED},
        "smsc": {"5": Status.FAILED, "6": Status.DELIVERED, "-1": Status.SENT, "7": Status.UNKNOWN},
        "ogangi": {"DELIVRD": Status.FAILED, "SENT_TO_CARRIER": Status.QUEUED},
        "digitaleo": {"no": Status.FAILED},
    }
    assert read_status_maps({}) == {"redoxygen": {}, "smsc": {}, "ogangi": {}, "digitaleo": {}}


BAD_MAPS = [
    ("SMSC_STATUS_MAP", "5:failed,x:delivered", "SMSC_STATUS_MAP: 'x:delivered' is not a number SMSC sends"),
    ("SMSC_STATUS_MAP", "5", "SMSC_STATUS_MAP: '5' must be code:status"),
    ("SMSC_STATUS_MAP", "5:failed,5:delivered", "SMSC_STATUS_MAP: '5:delivered' maps code 5 a second time"),
    (
        "OGANGI_STATUS_MAP",
        "DELIVRD:done",
        "OGANGI_STATUS_MAP: 'DELIVRD:done': done is not a status, use one of "
        "scheduled, queued, sent, delivered, failed, unknown",
    ),
    ("OGANGI_STATUS_MAP", "MO:received", "OGANGI_STATUS_MAP: 'MO:received': received is the status of a reply"),
    ("OGANGI_STATUS_MAP", "a.b:sent", "OGANGI_STATUS_MAP: 'a.b:sent' is not a status name OGANGI sends"),
    ("REDOXYGEN_STATUS_MAP", "OK:delivered", "REDOXYGEN_STATUS_MAP: 'OK:delivered' is not a number Red Oxygen sends"),
    ("DIGITALEO_STATUS_MAP", "rep:replied", "DIGITALEO_STATUS_MAP: 'rep:replied': replied is the status of a reply"),
    ("DIGITALEO_STATUS_MAP", ":failed", "DIGITALEO_STATUS_MAP: ':failed' must be code:status"),
]


@pytest.mark.parametrize("setting,value,message", BAD_MAPS)
def test_a_bad_map_stops_the_web_app_naming_the_entry(env, setting, value, message):
    with pytest.raises(ConfigError) as err:
        create_app({**env, setting: value})
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize("setting,value,message", [BAD_MAPS[0], BAD_MAPS[7]])
def test_a_bad_map_stops_the_worker_and_smtpd(env, setting, value, message):
    with pytest.raises(ConfigError, match="^" + message[:30]):
        Runtime.from_env({**env, setting: value})  # what `smshooks worker` builds first
    with pytest.raises(ConfigError, match="^" + message[:30]):
        SmtpdSettings.from_env({**env, "SMTPD_RECIPIENTS": "sms@example.com", setting: value})


# Through each provider's endpoint ---------------------------------------------------------


def test_redoxygen_override_wins_and_finality_follows_the_status(env, redis):
    client = create_app({**env, "REDOXYGEN_STATUS_MAP": "0000:sent,11:delivered"}).test_client()
    messages = {"Messages": [{"SMSId": 1, "Result": 0}, {"SMSId": 2, "Result": "0011"}, {"SMSId": 3, "Result": 2015}]}
    assert client.post(f"/redoxygen/receipt?token={SECRET}", json=messages, headers=JSON).status_code == 200
    assert [summary(e) for e in inbox(redis)] == [
        ("receipt", "sent", False, "0000"),  # the override beats the built-in "delivered"
        ("receipt", "delivered", True, "0011"),  # `11` in the map is padded as the parser pads `Result`
        ("receipt", "failed", True, "2015"),  # not in the map: the built-in table
    ]


def test_smsc_override_compares_numbers_as_numbers(env, redis):
    client = create_app({**env, "SMSC_STATUS_MAP": "5:failed,6:delivered,-1:sent"}).test_client()
    status = {"id": "1234", "phone": "79991234567", "time": "1700000000", "err": "0"}
    for code in ("5", "06", "-1", "1", "7"):
        response = client.post(f"/smsc/callback?token={SECRET}&fmt=3", json={**status, "status": code}, headers=JSON)
        assert response.status_code == 200, response.data
    assert [summary(e) for e in inbox(redis)] == [
        ("receipt", "failed", True, "5"),
        ("receipt", "delivered", True, "06"),  # kept as SMSC wrote it, matched as the number 6
        ("receipt", "sent", False, "-1"),  # the override beats the built-in "queued"
        ("receipt", "delivered", True, "1"),
        ("receipt", "unknown", False, "7"),
    ]
    assert inbox(redis)[0]["description"] == "status 5 (SMSC_STATUS_MAP)"


def test_ogangi_override_is_case_insensitive_and_can_make_received_a_receipt(env, redis):
    client = create_app(
        {**env, "OGANGI_STATUS_MAP": "BUFFERED:queued,expired:unknown,RECEIVED:delivered"}
    ).test_client()
    message = {"id": "9", "from": "19893653744", "to": "18133210984", "text": "hi"}
    for status in ("buffered", "EXPIRED", "Received", "DELIVRD"):
        response = client.post(f"/ogangi/status?token={SECRET}", json={**message, "status": status}, headers=JSON)
        assert response.status_code == 200, response.data
    assert [summary(e) for e in inbox(redis)] == [
        ("receipt", "queued", False, "buffered"),
        ("receipt", "unknown", False, "EXPIRED"),  # the override beats the built-in "failed"
        ("receipt", "delivered", True, "Received"),  # the map names it: a receipt, not a reply
        ("receipt", "delivered", True, "DELIVRD"),  # the built-in table still applies
    ]


@pytest.fixture
def api():
    standin = DigitaleoStandIn().start()
    yield standin
    standin.stop()


def test_digitaleo_override_through_the_ping_and_the_worker(env, redis, api, sqlite_url, monkeypatch):
    monkeypatch.setattr(digitaleo_sync, "_session", make_session(backoff=0.01))
    full_env = {
        **env,
        **api.env(),
        "DIGITALEO_PING_DELAY": "0",
        "DIGITALEO_TIMEOUT": "2",
        "DIGITALEO_STATUS_MAP": "no:failed,NEW:sent",
    }
    web = create_app(full_env).test_client()
    api.add_status("1", "no")
    api.add_status("2", "new")
    api.add_status("3", "ok")
    for sms_id in ("1", "2", "3"):
        assert web.get(f"/digitaleo/ping?token={SECRET}&sms_id={sms_id}").status_code == 200
    run_worker(full_env)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as db:
        rows = db.execute(sa.text("SELECT message_id, status, final, provider_status FROM sms_events")).all()
    engine.dispose()
    assert sorted((m, s, bool(f), p) for m, s, f, p in rows) == [
        ("1", "failed", True, "no"),  # the override beats the built-in "unknown"
        ("2", "sent", False, "new"),
        ("3", "delivered", True, "ok"),
    ]


# Through the email path -------------------------------------------------------------------


def test_the_email_path_applies_the_same_map(env, redis):
    client = create_app({**env, "REDOXYGEN_STATUS_MAP": "0000:sent"}).test_client()
    response = client.post(f"/inbound/email?token={SECRET}", data=REDOXYGEN_RECEIPT, content_type="message/rfc822")
    assert response.status_code == 200, response.data
    [event] = inbox(redis)
    assert (event["provider"], *summary(event)) == ("redoxygen", "receipt", "sent", False, "0000")


def test_smsc_names_its_charset_in_the_url():
    # The URL's charset is SMSC's own extra; koi8-r is not used with fmt (XML, JSON).
    assert smsc.url_charset(None, None) == "windows-1251"
    assert smsc.url_charset("UTF-8", "3") == "utf-8"
    assert smsc.url_charset("koi8-r", "3") is None
