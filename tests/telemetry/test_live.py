"""The console's live figures in Redis (webhooks/telemetry/live.py), counted through the real endpoints."""

from __future__ import annotations

from redis import Redis

from tests.conftest import SECRET
from tests.redoxygen_samples import MESSAGE_1, MESSAGE_2
from webhooks import create_app
from webhooks.telemetry import live

JSON = {"Accept": "application/json"}
RECEIPT = f"/redoxygen/receipt?token={SECRET}"


def hour(redis: Redis) -> dict[tuple[str, ...], int]:
    """Every count of the last hour, summed over its minutes."""
    total: dict[tuple[str, ...], int] = {}
    for m in live.last_minutes(redis):
        for key, n in m["counts"].items():
            total[key] = total.get(key, 0) + n
    return total


def test_every_outcome_is_counted_in_redis(client, redis):
    receipt = {"json": {"Messages": {"Count": 1, "1": MESSAGE_1}}, "headers": JSON}
    assert client.post(RECEIPT, **receipt).status_code == 200
    assert client.post(RECEIPT, **receipt).status_code == 200  # a duplicate
    assert client.post("/redoxygen/receipt", **receipt).status_code == 401
    assert client.post(RECEIPT, data=b"{not json", content_type="application/json", headers=JSON).status_code == 400
    counts = hour(redis)
    assert counts[("callback", "redoxygen", "accepted")] == 1
    assert counts[("callback", "redoxygen", "duplicate")] == 1
    assert counts[("callback", "redoxygen", "refused:401")] == 1
    assert counts[("callback", "redoxygen", "refused:400")] == 1
    assert counts[("event", "redoxygen", "receipt", "delivered")] == 1  # the duplicate stored nothing
    assert live.events_total(redis)[("event", "redoxygen", "receipt", "delivered")] == 1
    assert redis.ttl(live.minute_key()) > 3600  # kept past the hour the overview shows, then gone


def test_an_accepted_callback_is_counted_in_the_stores_own_call(client, redis, redis_server):
    # One round trip per callback: the count rides in the Lua call. MONITOR would see a second one.
    client.post(RECEIPT, json=MESSAGE_2, headers=JSON)  # the script is loaded (EVALSHA thereafter)
    with redis.monitor() as monitor:
        assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
        redis.ping()  # a marker (on a connection made before): what came before it is the callback's
        commands = []
        while not commands or commands[-1] != "PING":
            seen = monitor.next_command()
            name = seen["command"].split()[0]
            # The script's own commands are shown too; HELLO/CLIENT is the marker's connection saying hello.
            if seen.get("client_type") != "lua" and name not in ("HELLO", "CLIENT"):
                commands.append(name)
    assert commands == ["EVALSHA", "PING"], commands
    assert hour(redis)[("callback", "redoxygen", "accepted")] == 2


def test_two_app_instances_see_the_same_numbers(env, redis):
    first, second = create_app(env).test_client(), create_app(env).test_client()
    assert first.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    assert second.post(RECEIPT, json=MESSAGE_2, headers=JSON).status_code == 200
    assert second.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    # Each process reads Redis, not its own memory: both see every callback.
    counts = hour(Redis.from_url(env["REDIS_URL"]))
    assert counts[("callback", "redoxygen", "accepted")] == 2
    assert counts[("callback", "redoxygen", "duplicate")] == 1


def test_a_503_is_kept_while_redis_is_down_and_counted_once_it_is_back(client, redis, redis_server):
    redis_server.stop()
    try:
        assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 503
        assert live.pending() >= 1
    finally:
        redis_server.start()
    # The next callback reaches Redis; the 503 waiting in this process goes with it.
    fresh = Redis.from_url(redis_server.url)
    assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200  # the flush follows an answer
    counts = hour(fresh)
    assert counts[("callback", "redoxygen", "503")] == 1
    assert counts[("callback", "redoxygen", "accepted")] == 1
    assert live.pending() == 0
