"""Send Red Oxygen receipts at a steady rate, on a fixed schedule, and report what came back.

    python -m bench.paced_sender URL --rate 200 --seconds 15 --first-id 1000000

Request i is due at start + i / rate. Worker threads take the next due request from a
shared counter, so one slow answer does not hold up the schedule while other threads are
free. Lateness (how far behind schedule a request went out) is reported separately from
the HTTP latency, so a sender that could not keep up is visible rather than hidden.

Prints one JSON object on stdout: counts by status, latency and lateness percentiles.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

BODY = (
    '{"Messages":{"Count":1,"1":{"SMSId":%d,"DestTn":"+61409000000","Result":"0000",'
    '"ResultText":"Delivered","Timestamp":"2024-09-20T04:39:13.819Z"}}}'
)
HEADERS = {"Content-Type": "application/json"}
HTTP_TIMEOUT = 10  # seconds; bounds every request, so the run always ends


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class PacedSender:
    def __init__(self, url: str, rate: float, seconds: float, first_id: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.rate = rate
        self.total = int(rate * seconds)
        self.first_id = first_id
        self._next = 0
        self._lock = threading.Lock()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []  # seconds, send to full answer read
        self.lateness: list[float] = []  # seconds behind schedule at send time

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next - 1

    def _post(self, sms_id: int) -> str:
        # A new connection per request, as many providers call back: the costlier case for the server.
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request("POST", self.path, BODY % sms_id, HEADERS)
            response = conn.getresponse()
            response.read()
            return str(response.status)
        except (OSError, http.client.HTTPException) as err:
            return f"error:{type(err).__name__}"
        finally:
            conn.close()

    def _loop(self, start: float) -> None:
        while (i := self._take()) is not None:
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            status = self._post(self.first_id + i)
            done = time.monotonic()
            with self._lock:
                self.statuses[status] += 1
                self.latencies.append(done - sent)
                self.lateness.append(max(0.0, sent - due))

    def run(self, threads: int) -> dict:
        start = time.monotonic() + 0.2  # let every thread be waiting before the first request is due
        workers = [threading.Thread(target=self._loop, args=(start,), daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            # Bounded: the schedule plus one full HTTP timeout per request a thread may still be in.
            worker.join(timeout=self.total / self.rate + 2 * HTTP_TIMEOUT + 5)
        elapsed = time.monotonic() - start
        ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
        return {
            "planned": self.total,
            "sent": sum(self.statuses.values()),
            "ok": self.statuses.get("200", 0),
            "statuses": dict(self.statuses),
            "elapsed_s": round(elapsed, 3),
            "achieved_rate": round(sum(self.statuses.values()) / elapsed, 1) if elapsed > 0 else None,
            "latency_p50_ms": ms(percentile(self.latencies, 50)),
            "latency_p99_ms": ms(percentile(self.latencies, 99)),
            "latency_max_ms": ms(max(self.latencies, default=None)),
            "lateness_p99_ms": ms(percentile(self.lateness, 99)),
            "lateness_max_ms": ms(max(self.lateness, default=None)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=200, help="callbacks per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--first-id", type=int, default=1, help="SMSId of the first callback; then +1 each")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    result = PacedSender(args.url, args.rate, args.seconds, args.first_id).run(args.threads)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
