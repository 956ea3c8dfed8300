"""REDIS_SSL_CERT_REQS and the one place Redis clients are made, against a real TLS-only redis-server."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tests.tls_redis import PASSWORD, TlsRedisServer, tls_redis
from webhooks.config import ConfigError, Settings, cert_reqs_setting
from webhooks.redis_connection import certificate_problem, describe, redis_client
from webhooks.telemetry import metrics


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory):
    with tls_redis(tmp_path_factory.mktemp("tls-redis")) as server:
        yield server


def test_the_setting_defaults_to_required_and_takes_three_values():
    assert Settings.from_env({}).redis_ssl_cert_reqs == "required"
    assert cert_reqs_setting({"REDIS_SSL_CERT_REQS": ""}) == "required"
    assert [cert_reqs_setting({"REDIS_SSL_CERT_REQS": v}) for v in ("required", "Optional", " NONE ")] == [
        "required",
        "optional",
        "none",
    ]
    assert Settings.from_env({"REDIS_SSL_CERT_REQS": "none"}).redis_ssl_cert_reqs == "none"


@pytest.mark.parametrize("value", ["off", "false", "CERT_NONE", "0"])
def test_a_bad_value_is_a_config_error_naming_the_setting(value):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"REDIS_SSL_CERT_REQS": value})
    assert str(refused.value) == f"REDIS_SSL_CERT_REQS must be one of required, optional, none, got {value!r}"


def test_none_reaches_a_self_signed_server(tls_server: TlsRedisServer):
    client = redis_client(tls_server.url, "none", socket_connect_timeout=2)
    client.set("test:tls", "yes")
    assert client.get("test:tls") == b"yes"


@pytest.mark.parametrize("cert_reqs", ["required", "optional"])
def test_a_checked_certificate_is_refused_and_the_error_says_what_fixes_it(tls_server: TlsRedisServer, cert_reqs):
    # Python's client side treats `optional` as `required` (ssl.CERT_OPTIONAL): only `none` passes.
    with pytest.raises(RedisConnectionError) as refused:
        redis_client(tls_server.url, cert_reqs, socket_connect_timeout=2).ping()
    problem = certificate_problem(refused.value)
    assert problem == (
        "the TLS certificate of Redis failed verification (self-signed certificate): if it is self-signed, "
        "as on Heroku Key-Value Store, set REDIS_SSL_CERT_REQS=none"
    )
    assert describe(refused.value) == f"ConnectionError: {problem}"
    assert PASSWORD not in describe(refused.value)


def test_other_errors_are_described_by_their_class_alone():
    with pytest.raises(RedisError) as refused:
        redis_client("redis://127.0.0.1:1/0", socket_connect_timeout=1).ping()
    assert certificate_problem(refused.value) is None
    assert describe(refused.value) == "ConnectionError"


def test_the_setting_has_no_effect_on_a_plain_url(redis, redis_server):
    # redis-py refuses ssl_cert_reqs for a plain connection: it must not be passed one.
    for cert_reqs in ("required", "none"):
        assert redis_client(redis_server.url, cert_reqs).ping()


def test_metrics_outside_a_job_count_over_tls(tls_server: TlsRedisServer, monkeypatch):
    # api_call's own client (no job, no connection given) is made from REDIS_URL and the setting.
    monkeypatch.setenv("REDIS_URL", tls_server.url)
    monkeypatch.setenv("REDIS_SSL_CERT_REQS", "none")
    metrics._redis_from_env.cache_clear()
    try:
        tls_server.client().delete(metrics.API_CALLS)
        metrics.api_call("digitaleo", "tls-test", "ok")
        assert tls_server.client().hgetall(metrics.API_CALLS) == {
            metrics.field("digitaleo", "tls-test", "ok").encode(): b"1"
        }
    finally:
        metrics._redis_from_env.cache_clear()
