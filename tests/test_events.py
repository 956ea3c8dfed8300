"""The event vocabulary: deterministic ids, the wire form, E.164, settings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.config import ConfigError, Settings
from webhooks.events import EVENT_SCHEMA, Event, Kind, Status, _from_wire, dump_events, load_events, wire, wire_json
from webhooks.phones import to_e164

T = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
PLUS_10 = timezone(timedelta(hours=10))


def event(**changes) -> Event:
    fields = dict(
        provider="redoxygen",
        kind=Kind.RECEIPT,
        status=Status.DELIVERED,
        message_id="123",
        provider_status="0000",
        received_at=T,
        occurred_at=T - timedelta(seconds=5),
        final=True,
    )
    return Event(**{**fields, **changes})


def test_event_id_ignores_when_we_received_it():
    assert event().event_id == event(received_at=T + timedelta(hours=3)).event_id


@pytest.mark.parametrize(
    "change",
    [
        {"message_id": "124"},
        {"provider_status": "2015"},
        {"occurred_at": T},
        {"provider": "other"},
        {"kind": Kind.REPLY, "status": Status.RECEIVED},
        {"text": "hi"},
        {"sender": "+61409000000"},
    ],
)
def test_event_id_changes_with_any_provider_fact(change):
    assert event(**change).event_id != event().event_id


def test_without_provider_time_occurred_at_is_received_at_and_id_is_stable():
    a, b = event(occurred_at=None), event(occurred_at=None, received_at=T + timedelta(minutes=1))
    assert a.occurred_at == a.received_at and a.event_id == b.event_id


def test_wire_form_round_trips():
    original = event(recipient="+61409000000", raw={"SMSId": 123, "nested": {"a": [1, 2]}}, description="ok")
    [wire] = dump_events([original])
    assert wire["occurred_at"] == "2026-11-23T09:59:55+00:00" and wire["status"] == "delivered"
    assert load_events([wire]) == [original]


def test_wire_form_refuses_unknown_fields():
    from marshmallow import ValidationError

    [wire] = dump_events([event()])
    with pytest.raises(ValidationError):
        load_events([{**wire, "surprise": 1}])


@pytest.mark.parametrize(
    "number,region,expected",
    [
        ("+61409000000", None, "+61409000000"),
        ("61409000000", None, "+61409000000"),
        ("0409 000 000", "AU", "+61409000000"),
        ("0612345678", "FR", "+33612345678"),
        ("0409000000", None, "0409000000"),
        (" SHORT ", None, "SHORT"),
        ("", None, None),
        (None, None, None),
    ],
)
def test_e164(number, region, expected):
    assert to_e164(number, region) == expected


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DEDUPE_WINDOW": "soon"}, "DEDUPE_WINDOW must be a whole number, got 'soon'"),
        ({"BATCH_SIZE": "0"}, "BATCH_SIZE must be at least 1, got 0"),
        ({"RETRY_INTERVALS": "10,x"}, "RETRY_INTERVALS must be comma-separated seconds"),
        ({"RETRY_INTERVALS": "-1"}, "RETRY_INTERVALS must not contain negative seconds"),
        ({"PHONE_REGION": "XX"}, "PHONE_REGION must be an ISO country code"),
        ({"HANDLERS": " , "}, "HANDLERS must name at least one handler"),
        ({"WEBHOOK_SECRET": "abc123"}, "WEBHOOK_SECRET must be at least 16 characters \\(it is 6\\)"),
    ],
)
def test_bad_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_no_retries():
    assert Settings.from_env({"RETRY_INTERVALS": "none"}).retry_intervals == ()


def test_settings_defaults():
    s = Settings.from_env({})
    assert (s.handlers, s.dedupe_window, s.retry_intervals, s.database_url) == (
        ("database",),
        604800,
        (10, 60, 300, 1800),
        "sqlite:///smshooks.db",
    )


def test_reply_match_window_setting():
    assert Settings.from_env({}).reply_match_window == 900
    assert Settings.from_env({"REPLY_MATCH_WINDOW": "60"}).reply_match_window == 60
    with pytest.raises(ConfigError, match="REPLY_MATCH_WINDOW must be at least 1"):
        Settings.from_env({"REPLY_MATCH_WINDOW": "0"})


def test_reply_match_key_ignores_whitespace_but_not_words():
    from webhooks.events import reply_match_key

    a = reply_match_key("digitaleo", "123", "+33601020304", "Yes, see you\r\n at 5 ")
    assert a == reply_match_key("digitaleo", "123", "+33601020304", "Yes,  see you at 5")
    assert a != reply_match_key("digitaleo", "123", "+33601020304", "No, see you at 5")
    assert a != reply_match_key("digitaleo", "124", "+33601020304", "Yes, see you at 5")
    assert a != reply_match_key("digitaleo", "123", "+33601020305", "Yes, see you at 5")
    assert a != reply_match_key("redoxygen", "123", "+33601020304", "Yes, see you at 5")
    assert a.startswith("digitaleo-")


def test_reply_event_id_holds_the_routes_own_facts_of_the_reply():
    from webhooks.events import reply_event_id, reply_match_key

    def rid(text="YES", route="callback", facts=("778899",)):
        return reply_event_id("redoxygen", "123", "+61409000000", text, route, facts)

    assert rid() == rid()  # the same callback delivered again
    assert rid() == rid(text=" YES\r\n")  # whitespace is folded, as for the match key
    assert rid() != rid(facts=("778900",))  # a second "YES": Red Oxygen gave it another EmailId
    assert rid() != rid(route="email")  # each route's ids are its own; copies are matched by the match key
    assert rid() != rid(text="NO")
    assert rid(facts=()) != rid(facts=("",))  # a fact left empty is still a position (one email's replies)
    assert rid().startswith("redoxygen-") and len(rid()) == len("redoxygen-") + 32
    assert rid(facts=()) != reply_match_key("redoxygen", "123", "+61409000000", "YES")


def test_reply_event_carries_its_copy_outside_the_wire_form():
    from webhooks.events import EVENT_SCHEMA, ReplyCopy, reply_match_key
    from webhooks.providers import ParseContext, reply_event

    ctx = ParseContext(received_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    event = reply_event(ctx, "redoxygen", "123", "+61409000000", "YES", route="email", facts=(None, "<m@x>"))
    assert event.reply_copy == ReplyCopy(reply_match_key("redoxygen", "123", "+61409000000", "YES"), "email", True)
    bare = reply_event(ctx, "redoxygen", "123", "+61409000000", "YES", route="callback", facts=(None,))
    assert bare.reply_copy is not None and bare.reply_copy.distinct is False  # nothing of this reply alone
    wire = EVENT_SCHEMA.dump(event)
    assert set(wire) == set(EVENT_SCHEMA.fields)  # the wire form is unchanged: last release's jobs load as before
    loaded = EVENT_SCHEMA.load(wire)
    assert loaded == event and loaded.reply_copy is None


def test_id_with_extra_facts_of_an_event_without_provider_time_ignores_when_we_received_it():
    # Red Oxygen replies carry no time: their EmailId was hashed with the receive time, so the
    # same reply delivered three times became three events (found by bench/faults scenario 5).
    from webhooks.events import event_id_for

    def reply(received_at):
        return Event(
            provider="redoxygen",
            kind=Kind.REPLY,
            status=Status.RECEIVED,
            message_id="123",
            sender="+61409000000",
            text="Yes",
            received_at=received_at,
        )

    later = reply(T + timedelta(seconds=3))
    assert event_id_for(reply(T), "778899") == event_id_for(later, "778899")
    assert event_id_for(reply(T), "778899") != event_id_for(reply(T), "778900")


_text = st.one_of(st.none(), st.text(max_size=20))  # lone surrogates included: a JSON body's "\ud800" is one
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([timezone.utc, PLUS_10])
)
_raw = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80), st.text(max_size=8)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(list(Kind)),
    status=st.sampled_from(list(Status)),
    message_id=st.text(min_size=1, max_size=12),
    recipient=_text,
    sender=_text,
    text=_text,
    provider_status=_text,
    description=_text,
    occurred_at=st.one_of(st.none(), _times),
    received_at=_times,
    final=st.booleans(),
    raw=_raw,
)
def test_the_fast_wire_form_is_the_schemas(**fields):
    e = Event(provider="redoxygen", **fields)
    assert wire(e) == EVENT_SCHEMA.dump(e)
    stored = json.loads(wire_json(e))  # what dispatch reads back from the inbox
    assert stored == json.loads(json.dumps(EVENT_SCHEMA.dump(e)))
    assert _from_wire(stored) is not None  # the fast load takes it ...
    assert load_events([stored]) == [e] == [EVENT_SCHEMA.load(stored)]  # ... and reads what the schema reads


@pytest.mark.parametrize(
    "change",
    [
        {"surprise": 1},
        {"message_id": ""},
        {"message_id": 5},
        {"final": "yes"},
        {"kind": "rumour"},
        {"occurred_at": "yesterday"},
        {"raw": []},
        {"text": 5},
    ],
)
def test_what_the_fast_load_does_not_take_goes_to_the_schema(change):
    from marshmallow import ValidationError

    [good] = dump_events([event()])
    assert _from_wire({**good, **change}) is None
    try:
        expected = EVENT_SCHEMA.load({**good, **change})
    except ValidationError:
        with pytest.raises(ValidationError):
            load_events([good, {**good, **change}])
    else:
        assert load_events([good, {**good, **change}])[1] == expected  # the schema's reading, as before
