"""Dispatch latency: a session's run-started delivery → its worker process started.

Both ends come from the emulator's records: the session's creation, when it publishes the
`session.status_run_started` event and sends its delivery, and the start of `python -m worker`
in the session's sandbox. (In a burst, one delivery's drain serves other sessions too, some
before their own delivery arrives; so the send time, not the arrival, is where it starts.)
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.stats import Row, percentile
from emulator.server import EmulatorServer
from tests.orchestrator_app.emulated import Stack, make_stack


def sent_at(stack: Stack, session_id: str) -> float:
    """When the emulator published the session's run-started event (its creation)."""
    return stack.server.emulator.anthropic.sessions[session_id].created_at.timestamp()


def tally(stack: Stack, sessions: list[str]) -> tuple[list[float], int, int]:
    """(latency of each served session, duplicate worker starts, sessions not served)."""
    latencies, duplicates, unserved = [], 0, 0
    for session_id in sessions:
        starts = stack.worker_starts(session_id)
        if not starts:
            unserved += 1
            continue
        duplicates += len(starts) - 1
        latencies.append(min(s.at for s in starts) - sent_at(stack, session_id))
    return latencies, duplicates, unserved


def release_workers(stack: Stack, sessions: list[str]) -> None:
    """End the burst's workers: they would hold their sandboxes, and real workers the CPU,
    through the next burst otherwise."""
    from orchestrator_app.workers import worker_sandbox_name

    blaxel = stack.server.emulator.blaxel
    for session_id in sessions:
        sandbox = blaxel.sandboxes.get(worker_sandbox_name(session_id))
        if sandbox is not None:
            sandbox.processes.kill_all()


def serve_burst(stack: Stack, n: int, timeout: float) -> list[Row]:
    """Create `n` sessions at once; wait until each has a worker (or `timeout`); the figures."""
    with ThreadPoolExecutor(max_workers=min(n, 32)) as pool:
        sessions = list(pool.map(lambda _: stack.create_session(), range(n)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(stack.worker_starts(s) for s in sessions):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a duplicate start would land just after the first: give it a moment
    latencies, duplicates, unserved = tally(stack, sessions)
    release_workers(stack, sessions)
    group = f"dispatch N={n}"
    return [
        Row(group, "run-started delivery sent→worker started p50", percentile(latencies, 50), "s"),
        Row(group, "run-started delivery sent→worker started p95", percentile(latencies, 95), "s"),
        Row(group, "duplicate workers", duplicates, expect="= 0"),
        Row(group, "sessions not served", unserved, expect="= 0"),
    ]


def run(server: EmulatorServer, worker_image: str, tmp: Path, sizes: list[int]) -> list[Row]:
    """One environment and orchestrator per burst size, so bursts do not share a queue."""
    rows: list[Row] = []
    for n in sizes:
        stack = make_stack(server, worker_image, tmp, f"bench-dispatch-{n}")
        try:
            stack.orchestrator()
            rows += serve_burst(stack, n, timeout=60 + 2.0 * n)
        finally:
            stack.close()
            stack.client.close()
    return rows
