"""Stream provider callbacks at a steady rate and record which events got a 2xx (bench/faults' sender).

    python -m bench.fault_sender BASE_URL --secret S --mix steady --rate 30 --seconds 20 --first-id 9000

Runs as a process of its own, so the faults injected into the service never pause it.
Callback n (first_id, first_id + 1, ...) is built by the mix's generator `mix[n % len(mix)]`;
a generator returns the path, body and headers of one provider callback. Every callback asks
for a JSON answer, whose `event_ids` are the events the service acknowledged.

A Digitaleo ping carries no event: its answer names the SMS (`sms_id`), which the scenario turns
into the events the stand-in API holds for it (tests.digitaleo_standin.made_up_history).

Prints one JSON object on stdout: what paced_sender prints, plus `acked` (every acknowledged
event id, repeats included), `acked_pings` (the SMS ids of acknowledged pings) and `acked_callbacks`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
from collections.abc import Callable
from urllib.parse import urlencode

from bench.paced_sender import HTTP_TIMEOUT, PacedSender

Callback = tuple[str, str, dict[str, str]]  # path, body, headers
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
PHONE = "+61409000000"


def _receipt(sms_id: int, result: str, text: str, timestamp: str) -> Callback:
    body = {"SMSId": sms_id, "DestTn": PHONE, "Result": result, "ResultText": text, "Timestamp": timestamp}
    return "/redoxygen/receipt", json.dumps({"Messages": {"Count": 1, "1": body}}), JSON


def _reply(sms_id: int, text: str) -> Callback:
    fields = {"SmsId": sms_id, "DestTN": "61409000000", "ReplyText": text, "EmailId": sms_id, "CustomerId": "C1"}
    return "/redoxygen/reply", urlencode(fields), FORM


def receipt(n: int) -> Callback:
    """A Red Oxygen delivery receipt for SMS n."""
    return _receipt(n, "0000", "Delivered", "2024-09-20T04:39:13.819Z")


def reply(n: int) -> Callback:
    """A Red Oxygen reply to SMS n (an HTML form, as the Reply Service posts it)."""
    return _reply(n, f"Yes, see you at {n % 24}h\nthanks")


# Out of order: the furthest-along status of a message arrives first and older ones after it.
# Group g (callbacks 9g .. 9g + 8) is message g; each of its three steps is sent three times in a row.
REORDERED_STEPS = {
    0: [("0000", "2024-09-20T04:39:20Z"), ("1000", "2024-09-20T04:39:15Z"), ("1001", "2024-09-20T04:39:10Z")],
    1: [("reply", ""), ("0000", "2024-09-20T04:39:20Z"), ("1000", "2024-09-20T04:39:15Z")],
}
REORDERED_FINAL = {0: "delivered", 1: "replied"}  # what sms_messages must end at, by g % 2


def reordered(n: int) -> Callback:
    """Receipts and replies of message n // 9, highest status first, each callback three times."""
    group, step = divmod(n, 9)
    result, timestamp = REORDERED_STEPS[group % 2][step // 3]
    if result == "reply":
        return _reply(group, "Stop")
    return _receipt(group, result, f"code {result}", timestamp)


def ping(n: int) -> Callback:
    """A Digitaleo ping for SMS n: the worker then asks the stand-in API what happened to it."""
    return f"/digitaleo/ping?sms_id={n}", "", {"Accept": "application/json"}


GENERATORS: dict[str, Callable[[int], Callback]] = {
    "receipt": receipt,
    "reply": reply,
    "reordered": reordered,
    "ping": ping,
}
MIXES = {
    "steady": ["receipt", "receipt", "receipt", "reply", "ping"],
    "reordered": ["reordered"],
}


class FaultSender(PacedSender):
    """PacedSender's schedule with a mix of callbacks, keeping the event ids of every 2xx."""

    def __init__(self, base: str, secret: str, mix: str, rate: float, seconds: float, first_id: int) -> None:
        super().__init__(base, rate, seconds, first_id)
        self.secret = secret
        self.mix = [GENERATORS[name] for name in MIXES[mix]]
        self.acked: list[str] = []
        self.acked_pings: list[str] = []
        self._acked_lock = threading.Lock()

    def _post(self, n: int) -> str:
        path, body, headers = self.mix[n % len(self.mix)](n)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request("POST", f"{path}{'&' if '?' in path else '?'}token={self.secret}", body, headers)
            response = conn.getresponse()
            answer = response.read()
            if 200 <= response.status < 300:
                data = json.loads(answer)
                with self._acked_lock:
                    if "sms_id" in data:  # a ping: its events come from the API, later
                        self.acked_pings.append(data["sms_id"])
                    else:
                        self.acked += data["event_ids"]
            return str(response.status)
        except (OSError, http.client.HTTPException) as err:
            return f"error:{type(err).__name__}"
        finally:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="http://127.0.0.1:PORT")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--mix", choices=sorted(MIXES), default="steady")
    parser.add_argument("--rate", type=float, default=30, help="callbacks per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    sender = FaultSender(args.base, args.secret, args.mix, args.rate, args.seconds, args.first_id)
    result = sender.run(args.threads)
    result["acked_callbacks"] = sum(n for status, n in sender.statuses.items() if status.startswith("2"))
    result["acked"] = sender.acked
    result["acked_pings"] = sender.acked_pings
    print(json.dumps(result))


if __name__ == "__main__":
    main()
