"""The Failures page: a handler job that failed for real (Slack's stand-in answering 500), replayed from the page."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SECRET, run_worker
from tests.console.conftest import CONSOLE, csrf_token, sign_in
from tests.local_services import slack_stand_in
from tests.redoxygen_samples import MESSAGE_1
from webhooks import create_app

RECEIPT = f"/redoxygen/receipt?token={SECRET}"
JOB_ID = re.compile(r'name="job_id" value="([^"]+)"')


@pytest.fixture
def slack():
    with slack_stand_in() as stand_in:
        yield stand_in


@pytest.fixture
def failing(env, slack):
    """A signed-in console and its environment, after one Slack job failed for good."""
    env = {**env, **CONSOLE, "HANDLERS": "database,slack", "SLACK_WEBHOOK_URL": slack.url}
    env["SLACK_RETRY_INTERVALS"] = "none"
    client = create_app(env).test_client()
    assert sign_in(client).status_code == 302
    slack.default = 500
    assert client.post(RECEIPT, json=MESSAGE_1, headers={"Accept": "application/json"}).status_code == 200
    run_worker(env)
    assert slack.attempts() == 1 and not slack.delivered()
    slack.default = 200
    return client, env


def test_the_page_lists_a_failed_job(failing):
    client, _ = failing
    html = client.get("/console/failures").get_data(as_text=True)
    assert "<td>slack</td>" in html
    assert "1: 1 receipt delivered" in html
    assert "<td>1</td>" in html  # attempts
    assert "500" in html  # the reason names Slack's answer
    assert len(JOB_ID.findall(html)) == 1 and "Replay all (1)" in html


def test_replay_from_the_page_delivers_once(failing, slack, redis):
    client, env = failing
    html = client.get("/console/failures").get_data(as_text=True)
    [job_id] = JOB_ID.findall(html)
    answer = client.post("/console/failures/replay", data={"job_id": job_id, "csrf_token": csrf_token(html)})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/failures")
    page = client.get("/console/failures").get_data(as_text=True)
    assert f"1 job(s) put back on the queue: {job_id}" in page
    assert "No failed handler job." in page
    # The same form sent twice (a double click, a second operator): the job is queued once.
    again = client.post("/console/failures/replay", data={"job_id": job_id, "csrf_token": csrf_token(html)})
    assert again.status_code == 302
    assert f"no failed handler job &#39;{job_id}&#39;" in client.get("/console/failures").get_data(as_text=True)
    run_worker(env)
    assert len(slack.delivered()) == 1
    run_worker(env)
    assert len(slack.delivered()) == 1


def test_replay_all_from_the_page(failing, slack):
    client, env = failing
    html = client.get("/console/failures").get_data(as_text=True)
    answer = client.post("/console/failures/replay", data={"all": "1", "csrf_token": csrf_token(html)})
    assert answer.status_code == 302
    assert "1 job(s) put back on the queue" in client.get("/console/failures").get_data(as_text=True)
    run_worker(env)
    assert len(slack.delivered()) == 1


def test_replay_needs_the_csrf_token(failing, slack):
    client, env = failing
    [job_id] = JOB_ID.findall(client.get("/console/failures").get_data(as_text=True))
    assert client.post("/console/failures/replay", data={"job_id": job_id}).status_code == 400
    assert job_id in client.get("/console/failures").get_data(as_text=True)  # still failed, not replayed
    run_worker(env)
    assert not slack.delivered()
