"""The console in Debian's chromium (Playwright) against a real gunicorn and `smshooks worker`: an operator's day.

Screenshots of every page go to the test's tmp_path; SMSHOOKS_SCREENSHOTS=docs also writes the
overview's to docs/console-overview.png (the docs' picture), which a normal run leaves alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests

from tests.conftest import ROOT, SECRET, wait_for
from tests.console.conftest import Service
from tests.processes import rows
from tests.redoxygen_samples import MESSAGE_1, REPLY

PHONE = "+61409000000"
TYPED = "0409 000 000"  # as an Australian operator types it (PHONE_REGION=AU)


def post(service: Service, path: str, body: dict, token: str = SECRET) -> requests.Response:
    return requests.post(f"{service.base}{path}?token={token}", json=body, timeout=10)


def receipt(sms_id: int, phone: str) -> dict:
    return {"Messages": {"Count": 1, "1": {**MESSAGE_1, "SMSId": sms_id, "DestTn": phone}}}


def shoot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def slack_bodies_for(service: Service, sms_id: int, status: int | None = None) -> list[dict]:
    with service.slack.lock:
        return [
            r["body"]
            for r in service.slack.requests
            if f"SMS {sms_id}" in r["body"]["text"] and (status is None or r["status"] == status)
        ]


def test_an_operator_finds_a_message_sees_a_refused_callback_and_replays_a_failure(page, service, tmp_path):
    # A receipt and the reply to that SMS, from the phone the operator will look up.
    assert post(service, "/redoxygen/receipt", receipt(5551, PHONE)).status_code == 200
    reply = {**REPLY, "SmsId": "5551", "DestTN": PHONE.lstrip("+"), "EmailId": "990001"}
    assert post(service, "/redoxygen/reply", reply).status_code == 200
    wait_for(lambda: len(rows(service.database_url, "select 1 from sms_events where message_id = '5551'")) == 2, 30)
    shoot(page, tmp_path, "overview-signed-in")

    # Messages: the number as typed, national, finds the message; its page shows both events.
    page.get_by_role("link", name="Messages", exact=True).click()
    page.get_by_role("searchbox").or_(page.locator("main").get_by_role("textbox")).first.fill(TYPED)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/messages?*")
    shoot(page, tmp_path, "messages-search")
    page.locator("main").get_by_role("link", name="5551").first.click()
    page.wait_for_url("**/console/messages/redoxygen/5551")
    main = page.locator("main")
    main.get_by_text("delivered", exact=False).first.wait_for()
    main.get_by_text(REPLY["ReplyText"]).first.wait_for()
    assert PHONE in main.inner_text(), "a signed-in user sees the number in full"
    shoot(page, tmp_path, "message")

    # A callback with the wrong secret shows up on Refused callbacks, saying why.
    assert post(service, "/redoxygen/receipt", receipt(5553, PHONE), token="not-the-secret").status_code == 401
    page.get_by_role("link", name="Refused callbacks").click()
    page.locator("main").get_by_text("/redoxygen/receipt").first.wait_for()
    assert "401" in page.locator("main").inner_text()
    shoot(page, tmp_path, "refused")

    # Slack is down: the receipt's Slack job fails (SLACK_RETRY_INTERVALS=none) and waits on Failures.
    service.slack.default = 500
    assert post(service, "/redoxygen/receipt", receipt(5552, "+61409000001")).status_code == 200
    wait_for(lambda: slack_bodies_for(service, 5552), timeout=30)

    def failure_listed() -> bool:
        page.goto("/console/failures")
        return "Slack answered 500" in page.locator("main").inner_text()

    wait_for(failure_listed, timeout=20, interval=0.5)
    shoot(page, tmp_path, "failures")

    # Slack is back; one click replays the job, and the receipt reaches Slack exactly once.
    service.slack.default = 200
    page.get_by_role("button", name="Replay", exact=True).first.click()
    wait_for(lambda: slack_bodies_for(service, 5552, status=200), timeout=30)
    time.sleep(2)  # long enough for a second delivery to show up, were there one
    assert len(slack_bodies_for(service, 5552, status=200)) == 1
    assert len(slack_bodies_for(service, 5552)) == 2, "one refused (500) and one replayed delivery"
    page.goto("/console/failures")
    assert "Slack answered 500" not in page.locator("main").inner_text(), "a replayed job leaves the list"
    shoot(page, tmp_path, "failures-after-replay")

    page.get_by_role("link", name="Events", exact=True).click()
    page.locator("main").get_by_text("5552").first.wait_for()
    shoot(page, tmp_path, "events")

    page.get_by_role("link", name="Overview", exact=True).click()
    page.get_by_role("heading", name="Overview").wait_for()
    shoot(page, tmp_path, "overview")
    if os.environ.get("SMSHOOKS_SCREENSHOTS") == "docs":
        page.screenshot(path=str(ROOT / "docs" / "console-overview.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.goto("/console/events")
    page.get_by_role("heading", name="Sign in").wait_for()  # signed out: every page asks again
