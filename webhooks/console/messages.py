"""The console's Messages pages: search by provider message id or phone, and one message's timeline.

"Which handlers got it" is derived, not recorded: a handler in HANDLERS whose `<NAME>_EVENTS`
wants the event was given it by the dispatch; it is marked failed while a failed handler job in
RQ's failed registry still carries the event (read once per page, at most FAILED_SCAN jobs).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from flask import abort, current_app, request
from redis.exceptions import RedisError
from rq.job import Job
from sqlalchemy.exc import SQLAlchemyError

from handlers.policy import Policy
from handlers.registry import env_name, handler_of
from webhooks.config import ConfigError, Settings
from webhooks.pipeline.failures import HANDLE_FUNCS, pending
from webhooks.pipeline.queueing import queue_for
from webhooks.web.read_api import NoDatabase, get_reader
from webhooks.web.redis_store import get_redis

from . import bp
from .pages import render

FAILED_SCAN = 500  # failed jobs read for one message page; the Failures page lists them all


def event_policies(settings: Settings, env: Mapping[str, str]) -> dict[str, Policy | None]:
    """Each handler's `<NAME>_EVENTS` policy, built once per process; None for one that cannot be read."""
    policies: dict[str, Policy | None] = {}
    for name in settings.handlers:
        try:
            policies[name] = Policy.from_env(env_name(name), env, settings.retry_intervals)
        except ConfigError:
            policies[name] = None  # the worker refuses it too (handlers.registry): shown as unknown
    return policies


@bp.app_template_filter("utc_time")
def utc_time(value: str | None) -> str:
    """An ISO 8601 UTC time from the reader as people read it: `2026-12-02 04:42:20 UTC`."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value


@bp.route("/messages")
def messages() -> Any:
    query = request.args.get("q", "").strip()
    settings = current_app.config["SETTINGS"]
    context: dict[str, Any] = {"query": query, "found": None, "problem": None}
    try:
        if query:
            context["found"] = get_reader().search(query, settings.phone_region)
    except NoDatabase as err:
        context["problem"] = str(err)
    except SQLAlchemyError:
        context["problem"] = "The database cannot be read right now (is it up, and migrated by `smshooks initdb`?)."
    return render("console/messages.html", **context)


@bp.route("/messages/<provider>/<path:message_id>")
def message(provider: str, message_id: str) -> Any:
    try:
        found = get_reader().message(provider, message_id)
    except NoDatabase as err:
        return render("console/message.html", problem=str(err), message=None)
    except SQLAlchemyError:
        problem = "The database cannot be read right now (is it up, and migrated by `smshooks initdb`?)."
        return render("console/message.html", problem=problem, message=None), 503
    if found is None:
        abort(404, f"no message {message_id!r} of provider {provider!r} is stored")
    failed, failed_problem = _failed_events({e["event_id"] for e in found.events})
    policies: Mapping[str, Policy | None] = current_app.config.get("EVENT_POLICIES") or {}
    timeline = [(event, _recipients(event, policies, failed)) for event in found.events]
    return render("console/message.html", message=found, timeline=timeline, failed_problem=failed_problem, problem=None)


def _recipients(
    event: Mapping[str, Any], policies: Mapping[str, Policy | None], failed: Mapping[tuple[str, str], str]
) -> list[tuple[str, str, str | None]]:
    """(handler, given | failed | unknown, failed job id) for each handler that wants the event."""
    got: list[tuple[str, str, str | None]] = []
    for name, policy in policies.items():
        if policy is None:
            got.append((name, "unknown", None))
        elif policy.wants(event):
            job_id = failed.get((name, event["event_id"]))
            got.append((name, "failed" if job_id else "given", job_id))
    return got


def _failed_events(event_ids: set[str]) -> tuple[dict[tuple[str, str], str], str | None]:
    """(handler, event id) -> the failed job carrying it, for these events; or a sentence why unknown."""
    settings = current_app.config["SETTINGS"]
    try:
        queue = queue_for(get_redis(), settings.queue_name)
        ids = queue.failed_job_registry.get_job_ids(0, FAILED_SCAN - 1)
        jobs = Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer)
    except RedisError:
        return {}, "Redis cannot be reached: failed handler jobs are not shown."
    found: dict[tuple[str, str], str] = {}
    for job in jobs:
        if job is None or job.func_name not in HANDLE_FUNCS:
            continue
        for event in pending(job):
            if event.get("event_id") in event_ids:
                found[(handler_of(job.args[0]), event["event_id"])] = job.id
    return found, None
