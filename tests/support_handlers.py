"""Handlers for tests, loaded as `tests.support_handlers:Name`. They keep their records in Redis,
so a test can read what a worker in another process did."""

from __future__ import annotations

from redis import Redis

from handlers import Handler


class _RedisBacked(Handler):
    def __init__(self, redis_url: str) -> None:
        self.redis = Redis.from_url(redis_url)

    @classmethod
    def from_env(cls, env):
        return cls(env["REDIS_URL"])


class Recorder(_RedisBacked):
    """Appends every event id it is given to `test:recorder`, and each batch size to `test:recorder:batches`."""

    name = "recorder"

    def handle_batch(self, events):
        self.redis.rpush("test:recorder", *[e.event_id for e in events])
        self.redis.rpush("test:recorder:batches", len(events))


class Batched(Recorder):
    """A Recorder that takes at most two events a job, as SlackHandler takes ten."""

    name = "batched"
    max_batch = 2


class Flaky(_RedisBacked):
    """Raises while `test:flaky:failures` is above zero (counting it down); records successes."""

    name = "flaky"

    def handle_batch(self, events):
        self.redis.incr("test:flaky:attempts")
        if self.redis.decr("test:flaky:failures") >= 0:
            raise ConnectionError("flaky service is down")
        self.redis.rpush("test:flaky", *[e.event_id for e in events])


class Slow(_RedisBacked):
    """Counts attempts, then waits while `test:slow:block` exists (a test kills the worker meanwhile)."""

    name = "slow"

    def handle_batch(self, events):
        import time

        self.redis.incr("test:slow:attempts")
        while self.redis.exists("test:slow:block"):
            time.sleep(0.05)
        self.redis.rpush("test:slow", *[e.event_id for e in events])


class Leaky(Handler):
    """Fails with the secret in its error message, as a careless library might."""

    name = "leaky"

    @classmethod
    def from_env(cls, env):
        handler = cls()
        handler.secret = env["WEBHOOK_SECRET"]
        handler.url = env.get("LEAK") or f"https://hooks.example.com/in?token={handler.secret}"
        return handler

    def handle(self, event):
        raise ConnectionError(f"POST {self.url} failed")


class Broken(Handler):
    """A handler whose settings are wrong: it cannot be built."""

    name = "broken"

    @classmethod
    def from_env(cls, env):
        raise ValueError(f"BROKEN_URL must be an http:// URL, got {env.get('BROKEN_URL')!r}")


class NotAHandler:
    pass


class Blabbing(_RedisBacked):
    """Always fails, counting attempts in `test:blabbing:attempts`, with everything secret in its error."""

    name = "blabbing"

    @classmethod
    def from_env(cls, env):
        handler = cls(env["REDIS_URL"])
        handler.secret, handler.smtp_password = env["WEBHOOK_SECRET"], env["SMTP_PASSWORD"]
        return handler

    def handle_batch(self, events):
        self.redis.incr("test:blabbing:attempts")
        phones = ", ".join(e.sender or e.recipient or "" for e in events)
        raise ConnectionError(
            f"smtp://mailer:{self.smtp_password}@mail.example.com refused mail for {phones}; "
            f"callback https://hooks.example.com/in?token={self.secret}; "
            f"db postgresql://app:Hunter2-db-pw@db.example.com/app; access_token=ya29.a0Af-xyz"
        )
