"""`smshooks failed`, `smshooks replay` and `smshooks handlers`: operating the handlers."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from redis.exceptions import RedisError

from handlers.registry import installed
from webhooks.config import Settings
from webhooks.pipeline.failures import ReplayError, failed, replay
from webhooks.pipeline.queueing import queue_for
from webhooks.redis_connection import describe, redis_client


def _queue(settings: Settings) -> Any:
    redis = redis_client(settings.redis_url, settings.redis_ssl_cert_reqs, socket_connect_timeout=5)
    return queue_for(redis, settings.queue_name)


def _fail(message: str) -> int:
    print(f"smshooks: {message}", file=sys.stderr)
    return 1


def _failed(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        jobs = failed(_queue(settings), args.handler)
    except RedisError as err:
        return _fail(f"cannot reach Redis at REDIS_URL ({describe(err)})")
    if not jobs:
        print("no failed handler jobs")
        return 0
    for job in jobs:
        first = ", ".join(job.event_ids[:3]) + (f" and {len(job.event_ids) - 3} more" if len(job.event_ids) > 3 else "")
        print(
            f"{job.id}\n  handler: {job.handler}\n  events: {job.summary} ({first})\n"
            f"  error: {job.error}\n  attempts: {job.attempts}"
        )
    print(f"{len(jobs)} failed handler job(s); `smshooks replay --all` puts them back")
    return 0


def _replay(args: argparse.Namespace) -> int:
    if bool(args.all) == bool(args.job_ids):
        return _fail("replay needs job ids (from `smshooks failed`) or --all, not both and not neither")
    settings = Settings.from_env()
    try:
        done = replay(_queue(settings), args.job_ids, args.handler)
    except ReplayError as err:
        return _fail(str(err))
    except RedisError as err:
        return _fail(f"cannot reach Redis at REDIS_URL ({describe(err)})")
    for job_id in done:
        print(f"replayed {job_id}")
    print(f"{len(done)} job(s) put back on the {settings.queue_name!r} queue")
    return 0


def _handlers(args: argparse.Namespace) -> int:
    from webhooks.pipeline.jobs import Runtime

    available = installed()
    print("installed: " + ", ".join(f"{name} ({ep.value})" for name, ep in sorted(available.items())))
    runtime = Runtime.from_env()  # what `smshooks worker` builds, fallback included
    runtime.close()
    print("enabled (HANDLERS):")
    for name in runtime.settings.handlers:
        policy = runtime.policies.get(name)
        state = f"BROKEN: {runtime.broken[name]}" if name in runtime.broken else "ok"
        print(f"  {name}: {policy.describe() if policy else '?'}; {state}")
        for lane in (policy.lanes if policy else ()) or ():
            if lane in runtime.handlers:
                print(f"    {lane}: {runtime.handlers[lane].destination}")
    fallback = os.environ.get("FALLBACK_EMAIL_TO")
    if "fallback" in runtime.broken:
        print(f"fallback: BROKEN: {runtime.broken['fallback']}")
    else:
        print(f"fallback: {'email to ' + fallback if fallback else 'none (set FALLBACK_EMAIL_TO)'}")
    return 1 if runtime.broken else 0


def add_commands(commands: Any) -> None:
    """Register the three commands on `smshooks`'s sub-parsers."""
    failed_cmd = commands.add_parser("failed", help="list handler jobs that ran out of retries")
    failed_cmd.add_argument("--handler", help="only this handler's jobs")
    failed_cmd.set_defaults(func=_failed)
    replay_cmd = commands.add_parser("replay", help="put failed handler jobs back on the queue")
    replay_cmd.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="ids from `smshooks failed`")
    replay_cmd.add_argument("--all", action="store_true", help="every failed handler job")
    replay_cmd.add_argument("--handler", help="only this handler's jobs")
    replay_cmd.set_defaults(func=_replay)
    commands.add_parser("handlers", help="installed handlers, enabled ones and what each takes").set_defaults(
        func=_handlers
    )
