"""Dispatch latency: a run-started delivery reaching the orchestrator → the worker process started.

The delivery's arrival is the orchestrator's own `run started` log line (its `ts`); the worker's
start is the emulator's record of `python -m worker` starting in the session's sandbox. Both
clocks are this machine's wall clock.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.stats import Row, percentile
from emulator.server import EmulatorServer
from tests.orchestrator_app.emulated import Orchestrator, Stack, make_stack


def delivery_times(orchestrator: Orchestrator) -> dict[str, float]:
    """Session id → when its first accepted run-started delivery reached the orchestrator."""
    arrived: dict[str, float] = {}
    for entry in orchestrator.log_entries():
        if entry.get("msg") == "run started" and entry.get("accepted"):
            at = dt.datetime.fromisoformat(entry["ts"]).timestamp()
            arrived.setdefault(entry["session_id"], at)
    return arrived


def serve_burst(stack: Stack, orchestrator: Orchestrator, n: int, timeout: float) -> list[Row]:
    """Create `n` sessions at once; wait until each has a worker (or `timeout`); the figures."""
    with ThreadPoolExecutor(max_workers=min(n, 32)) as pool:
        sessions = list(pool.map(lambda _: stack.create_session(), range(n)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(stack.worker_starts(s) for s in sessions):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a duplicate start would land just after the first: give it a moment
    arrived = delivery_times(orchestrator)
    latencies, duplicates, unserved = [], 0, 0
    for session_id in sessions:
        starts = stack.worker_starts(session_id)
        if not starts:
            unserved += 1
            continue
        duplicates += len(starts) - 1
        if session_id in arrived:
            latencies.append(min(s.at for s in starts) - arrived[session_id])
    group = f"dispatch N={n}"
    return [
        Row(group, "delivery→worker started p50", percentile(latencies, 50), "s"),
        Row(group, "delivery→worker started p95", percentile(latencies, 95), "s"),
        Row(group, "sessions measured", len(latencies)),
        Row(group, "duplicate workers", duplicates, expect="= 0"),
        Row(group, "sessions not served", unserved, expect="= 0"),
    ]


def run(server: EmulatorServer, worker_image: str, tmp: Path, sizes: list[int]) -> list[Row]:
    """One environment and orchestrator per burst size, so bursts do not share a queue."""
    rows: list[Row] = []
    for n in sizes:
        stack = make_stack(server, worker_image, tmp, f"bench-dispatch-{n}")
        try:
            orchestrator = stack.orchestrator()
            rows += serve_burst(stack, orchestrator, n, timeout=60 + 2.0 * n)
        finally:
            stack.close()
            stack.client.close()
    return rows
