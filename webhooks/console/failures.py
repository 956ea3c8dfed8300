"""The console's Failures page: failed handler jobs, and replaying one or all of them.

Replay is `smshooks replay`'s own code (pipeline/failures.py `replay`): the registry entry is
removed atomically before the job is queued, so two replays at once (two people, or the page
and the command) queue it once, and a handler's marks (pipeline/handled.py) keep what was
delivered from being delivered again.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from flask import current_app, flash, redirect, request, url_for
from redis.exceptions import RedisError

from webhooks.pipeline.failures import ReplayError, failed, replay
from webhooks.pipeline.queueing import queue_for
from webhooks.redis_connection import describe
from webhooks.telemetry.redaction import scrub_text, secrets_from_env
from webhooks.web.redis_store import get_redis

from . import bp
from .pages import render


def _queue() -> Any:
    return queue_for(get_redis(), current_app.config["SETTINGS"].queue_name)


@bp.route("/failures")
def failures() -> Any:
    try:
        jobs = failed(_queue())
    except RedisError as err:
        return render("console/failures.html", jobs=[], problem=f"Redis cannot be reached ({describe(err)})")
    # A handler's error can carry what it was given (a URL with its token): never rendered as it is.
    settings = current_app.config["SETTINGS"]
    secrets = secrets_from_env(os.environ, (*settings.webhook_secrets, *settings.api_tokens))
    shown = [dataclasses.replace(job, error=scrub_text(job.error, secrets)) for job in jobs]
    return render("console/failures.html", jobs=shown, problem=None)


@bp.route("/failures/replay", methods=["POST"])
def replay_jobs() -> Any:
    """Replay the job named in the form (`job_id`), or every failed handler job (`all`)."""
    job_id = request.form.get("job_id", "").strip()
    if not job_id and request.form.get("all") != "1":
        flash("nothing to replay: name a job, or replay all", "error")
        return redirect(url_for("console.failures"))
    try:
        done = replay(_queue(), [job_id] if job_id else [])
    except ReplayError as err:
        flash(str(err), "error")
    except RedisError as err:
        flash(f"Redis cannot be reached ({describe(err)}): nothing was replayed", "error")
    else:
        if done:
            flash(f"{len(done)} job(s) put back on the queue: {', '.join(done)}", "ok")
        else:
            flash("nothing was replayed: no failed handler job left (someone else may have replayed it)", "ok")
    return redirect(url_for("console.failures"))
