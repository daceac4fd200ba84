"""`python -m bench.load URL RATE SECONDS` (signing secret on stdin): run-started deliveries
signed with that secret (valid ones, or forged with a secret the receiver does not hold) for
unknown sessions at RATE per second, open loop; JSON on stdout.

A process of its own, so that its timing is not shared with the emulator's threads (the
emulator runs inside the bench process). Each request is one short HTTP/1.1 connection written
with asyncio streams: an httpx pool with hundreds of requests waiting for a connection spends
its CPU on the queue (measured: the load stalled under dispatch), and then the latencies would
be the client's, not the orchestrator's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

# The suite's guard: any connection to a non-loopback address raises.
import tests.conftest  # noqa: F401
from bench.webhooks import Delivery, deliveries

REQUEST_TIMEOUT_S = 30.0
START_LEAD_S = 0.5


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 POST that closes its connection after the answer."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(status_line: bytes) -> int:
    """The status code of an HTTP/1.x status line (0 when it is not one)."""
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return 0
    return int(parts[1])


async def post(host: str, port: int, payload: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        return status_of(await reader.readline())
    finally:
        writer.close()


async def offer(
    url: str, batch: list[Delivery], rate: float
) -> tuple[list[float], list[float], dict[int, int]]:
    """Send `batch` at `rate` per second; answer latencies (s) and a count per status code
    (0: no answer within REQUEST_TIMEOUT_S, or the connection failed)."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    latencies: list[float] = []
    sent_at: list[float] = []
    statuses: dict[int, int] = {}
    payloads = [request_bytes(host, port, path, body, headers) for body, headers in batch]
    # The first send waits until every request's task is parked in its sleep: started at once,
    # the first ones were answered while the loop still set the others up, and that lag (25-35
    # ms, measured) showed as the answers' p99.
    start = time.perf_counter() + START_LEAD_S

    async def one(i: int, payload: bytes) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        sent = time.perf_counter()
        try:
            status = await asyncio.wait_for(post(host, port, payload), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError):
            status = 0
        latencies.append(time.perf_counter() - sent)
        sent_at.append(sent - start)
        statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i, p) for i, p in enumerate(payloads)))
    return latencies, sent_at, statuses


def main(argv: list[str]) -> int:
    url, rate, seconds = argv[0], float(argv[1]), float(argv[2])
    secret = sys.stdin.readline().strip()
    batch = deliveries(secret, int(rate * seconds))
    latencies, sent_at, statuses = asyncio.run(offer(url, batch, rate))
    json.dump({"latencies": latencies, "sent_at": sent_at, "statuses": statuses}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
