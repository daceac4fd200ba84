"""Webhook answer latency at a fixed offered load, for valid signed and for forged deliveries.

Open loop: request i is sent at start + i/rate whatever the earlier ones are doing, so a slow
answer cannot slow the offered load down. The deliveries name sessions that do not exist, so
the orchestrator's dispatch finds no queued work in its environment and starts no worker.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx

from bench.stats import Row, percentile
from emulator.server import EmulatorServer
from tests.orchestrator_app.conftest import make_signer, new_signing_secret, run_started
from tests.orchestrator_app.emulated import make_stack

Delivery = tuple[bytes, dict[str, str]]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def deliveries(secret: str, count: int) -> list[Delivery]:
    """`count` run-started deliveries signed with `secret`, each with its own id and session."""
    sign = make_signer(secret)
    return [sign(run_started("sesn_bench" + secrets.token_hex(8))) for _ in range(count)]


async def offer(url: str, batch: list[Delivery], rate: float) -> tuple[list[float], dict[int, int]]:
    """Send `batch` at `rate` per second; answer latencies (s) and a count per status code."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
        start = time.perf_counter()

        async def one(i: int, body: bytes, headers: dict[str, str]) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            sent = time.perf_counter()
            try:
                status = (await client.post(url, content=body, headers=headers)).status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(i, b, h) for i, (b, h) in enumerate(batch)))
    return latencies, statuses


def rows_for(kind: str, latencies: list[float], statuses: dict[int, int], ok: int) -> list[Row]:
    group = f"webhook {kind}"
    return [
        Row(group, "answer p50", percentile(latencies, 50), "s"),
        Row(group, "answer p99", percentile(latencies, 99), "s"),
        Row(group, f"answers other than {ok}", len(latencies) - statuses.get(ok, 0), expect="= 0"),
    ]


def run(
    server: EmulatorServer, worker_image: str, tmp: Path, rate: float, seconds: float
) -> list[Row]:
    stack = make_stack(server, worker_image, tmp, "bench-webhooks")
    secret = new_signing_secret()
    try:
        orchestrator = stack.orchestrator(webhook=False, ORCH_WEBHOOK_SIGNING_SECRET=secret)
        assert orchestrator.process is not None
        pid = orchestrator.process.pid
        count = int(rate * seconds)
        valid, forged = deliveries(secret, count), deliveries(new_signing_secret(), count)
        workers_before = len(stack.worker_starts())
        rss_before = rss_kib(pid)
        url = orchestrator.url + "/webhook"
        valid_lat, valid_status = asyncio.run(offer(url, valid, rate))
        forged_lat, forged_status = asyncio.run(offer(url, forged, rate))
        rss_after = rss_kib(pid)
        workers = len(stack.worker_starts()) - workers_before
    finally:
        stack.close()
        stack.client.close()
    load = f"{rate:g} req/s for {seconds:g} s"
    return [
        *rows_for(f"valid ({load})", valid_lat, valid_status, 200),
        *rows_for(f"forged ({load})", forged_lat, forged_status, 401),
        Row("webhook load", "orchestrator RSS before", round(rss_before / 1024, 1), "MiB"),
        Row("webhook load", "orchestrator RSS after", round(rss_after / 1024, 1), "MiB"),
        Row("webhook load", "workers started by the load", workers, expect="= 0"),
    ]
