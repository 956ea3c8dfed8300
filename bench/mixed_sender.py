"""Send a steady mix of callbacks (receipts, replies, pings) and report what came back.

    python -m bench.mixed_sender http://127.0.0.1:8000 --token T --rate 300 --seconds 120 \
        --mix 80,15,5 --first-id 1000000 [--ping-ids 1,2,3]

Request i is due at start + i / rate, whatever happened to the others: one asyncio loop
opens a connection per request (as many providers do: one callback, one connection), so a
slow answer never holds up the schedule. How late each request went out is reported
apart from its latency, so a sender that could not keep up shows instead of hiding.
The kind of request i is fixed by i (a repeating 100-slot pattern), so runs compare.

Prints one JSON object on stdout: counts by kind and status, latency percentiles
(overall and per kind), lateness, and the achieved rate of 2xx answers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from urllib.parse import urlencode, urlsplit

from bench.paced_sender import percentile

HTTP_TIMEOUT = 10  # seconds; bounds every request, so the run always ends
MAX_IN_FLIGHT = 512  # beyond this the sender itself is the limit; lateness then shows it

RECEIPT = (
    '{"Messages":{"Count":1,"1":{"SMSId":%d,"DestTn":"+61409000000","Result":"0000",'
    '"ResultText":"Delivered","Timestamp":"2024-09-20T04:39:13.819Z"}}}'
)


def kinds_pattern(mix: tuple[int, int, int]) -> list[str]:
    """100 slots spread evenly (receipts, replies, pings by `mix` percent), not in blocks."""
    weights = dict(zip(("receipt", "reply", "ping"), mix, strict=True))
    slots, credit = [], dict.fromkeys(weights, 0.0)
    for _ in range(100):
        for kind, weight in weights.items():
            credit[kind] += weight / 100
        kind = max(credit, key=credit.get)  # type: ignore[arg-type]
        credit[kind] -= 1
        slots.append(kind)
    return slots


class MixedSender:
    def __init__(
        self,
        base: str,
        token: str,
        rate: float,
        seconds: float,
        first_id: int,
        mix: tuple[int, int, int],
        ping_ids: list[str],
    ) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.rate = rate
        self.total = int(rate * seconds)
        self.first_id = first_id
        self.pattern = kinds_pattern(mix)
        if "ping" in self.pattern and not ping_ids:
            raise SystemExit("--ping-ids is required when the mix has pings")
        self.ping_ids = ping_ids
        self.statuses: collections.Counter[str] = collections.Counter()
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.lateness: list[float] = []
        self.first_ok: float | None = None
        self.last_ok: float | None = None

    def request(self, i: int) -> tuple[str, bytes]:
        kind = self.pattern[i % 100]
        sms_id = self.first_id + i
        host = f"Host: {self.host}:{self.port}\r\nConnection: close\r\n"
        if kind == "receipt":
            body = (RECEIPT % sms_id).encode()
            head = (
                f"POST /redoxygen/receipt?token={self.token} HTTP/1.1\r\n{host}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
        elif kind == "reply":
            body = urlencode(
                {
                    "SmsId": sms_id,
                    "DestTN": "61409000000",
                    "ReplyText": f"Yes please {i}",
                    "EmailId": sms_id,
                    "CustomerId": "42",
                }
            ).encode()
            head = (
                f"POST /redoxygen/reply?token={self.token} HTTP/1.1\r\n{host}"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
            )
        else:
            sms = self.ping_ids[i % len(self.ping_ids)]
            body = b""
            head = f"GET /digitaleo/ping?sms_id={sms}&token={self.token} HTTP/1.1\r\n{host}\r\n"
        return kind, head.encode() + body

    async def _send(self, i: int, due: float, gate: asyncio.Semaphore) -> None:
        kind, data = self.request(i)
        async with gate:
            sent = time.monotonic()
            self.lateness.append(max(0.0, sent - due))
            try:
                status = await asyncio.wait_for(self._exchange(data), HTTP_TIMEOUT)
            except (OSError, asyncio.TimeoutError, ValueError) as err:
                status = f"error:{type(err).__name__}"
            done = time.monotonic()
        self.statuses[f"{kind}:{status}"] += 1
        if status.startswith("2"):
            self.latencies[kind].append(done - sent)
            self.first_ok = min(self.first_ok or done, done)
            self.last_ok = max(self.last_ok or done, done)

    async def _exchange(self, data: bytes) -> str:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(data)
            await writer.drain()
            answer = await reader.read()  # Connection: close, so EOF ends the answer
        finally:
            writer.close()
        line = answer.split(b"\r\n", 1)[0].split()
        if len(line) < 2:
            raise ValueError("no status line")
        return line[1].decode()

    async def run(self) -> dict:
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        start = time.monotonic() + 0.2
        tasks = []
        for i in range(self.total):
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._send(i, due, gate)))
        await asyncio.gather(*tasks)
        return self.report(time.monotonic() - start)

    def report(self, elapsed: float) -> dict:
        every = [v for values in self.latencies.values() for v in values]
        ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
        ok = len(every)
        span = (self.last_ok - self.first_ok) if ok > 1 else 0
        return {
            "sent": self.total,
            "acknowledged": ok,
            "statuses": dict(self.statuses),
            "elapsed_s": round(elapsed, 2),
            "acknowledged_per_s": round(ok / span, 1) if span else None,
            "p50_ms": ms(percentile(every, 50)),
            "p99_ms": ms(percentile(every, 99)),
            "by_kind": {
                k: {"n": len(v), "p50_ms": ms(percentile(v, 50)), "p99_ms": ms(percentile(v, 99))}
                for k, v in sorted(self.latencies.items())
            },
            "late_p99_ms": ms(percentile(self.lateness, 99)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--first-id", type=int, default=1_000_000)
    parser.add_argument("--mix", default="80,15,5", help="percent receipts,replies,pings")
    parser.add_argument("--ping-ids", default="", help="comma-separated Digitaleo SMS ids to ping")
    args = parser.parse_args()
    mix = tuple(int(p) for p in args.mix.split(","))
    if len(mix) != 3 or sum(mix) != 100:
        raise SystemExit(f"--mix must be three percentages adding up to 100, got {args.mix!r}")
    ping_ids = [p for p in args.ping_ids.split(",") if p]
    sender = MixedSender(args.base, args.token, args.rate, args.seconds, args.first_id, mix, ping_ids)  # type: ignore[arg-type]
    print(json.dumps(asyncio.run(sender.run())))


if __name__ == "__main__":
    main()
