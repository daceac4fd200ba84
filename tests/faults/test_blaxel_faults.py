"""Blaxel failing (5xx, slow gateway timeouts) at each call of a worker's start: the session is
still served, or its work is left (unclaimed, or claimed and never stopped: a stop before the
first heartbeat can strand the session) with the reason logged, for the recovery poll to serve
once Blaxel recovers and the lease lapses. Never lost, never stopped, never two workers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulator.faults import FaultRule
from emulator.server import EmulatorServer
from tests.faults.conftest import FaultReport
from tests.faults.secret_scan import LogSources
from tests.orchestrator_app.emulated import Orchestrator, Stack, make_stack, wait_for

CREATE = r"^/blaxel/v0/sandboxes$"
STATUS = r"^/blaxel/v0/sandboxes/w-"
REACH = r"^/blaxel/sandboxes/w-[^/]+/process$"  # GET: the sandbox API's process list
START = r"^/blaxel/sandboxes/w-[^/]+/process$"  # POST: the worker process
LEFT_WITH_REASON = "left to be reclaimed, with a logged reason"


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    times: int
    delay_s: float = 0.0
    # Blaxel stays down until the test sees the reason logged (then it recovers).
    down_until_logged: bool = False
    expect: str = "served"


CASES = {
    "create 503 twice": Case("POST", CREATE, 503, 2),
    "create 504 after 2 s": Case("POST", CREATE, 504, 1, delay_s=2.0),
    "create 500 until Blaxel recovers": Case("POST", CREATE, 500, 100, down_until_logged=True),
    "status 502 three times": Case("GET", STATUS, 502, 3),
    "sandbox API 503 twice": Case("GET", REACH, 503, 2),
    "sandbox API 500 until Blaxel recovers": Case("GET", REACH, 500, 100, down_until_logged=True),
    "worker start 503 twice": Case("POST", START, 503, 2),
    "worker start 504 after 2 s": Case("POST", START, 504, 1, delay_s=2.0),
    "worker start 500 every time": Case("POST", START, 500, 100, expect=LEFT_WITH_REASON),
}

LEFT = "worker start failed; the claimed work is left to be reclaimed"
NOT_READY = "worker sandbox not ready"


def left_with_reason(stack: Stack, orchestrator: Orchestrator, session_id: str) -> bool:
    items = [i for i in stack.server.emulator.anthropic.work_items.values()]
    claimed = [i.state for i in items if i.session_id == session_id] == ["starting"]
    logged = any(
        e.get("msg") == LEFT and e.get("session_id") == session_id and e.get("reason")
        for e in orchestrator.log_entries()
    )
    return claimed and logged


def outcome(stack: Stack, orchestrator: Orchestrator, session_id: str) -> str | None:
    if stack.worker_starts(session_id):
        return "served"
    if left_with_reason(stack, orchestrator, session_id):
        return LEFT_WITH_REASON
    return None


@pytest.fixture(scope="module")
def served(
    orchestrator_emulator: EmulatorServer,
    worker_image_ref: str,
    tmp_path_factory: pytest.TempPathFactory,
    log_sources: LogSources,
) -> Iterator[tuple[Stack, Orchestrator]]:
    """One environment and orchestrator for every case (each case has its own session)."""
    tmp = tmp_path_factory.mktemp("blaxel-faults")
    stack = make_stack(orchestrator_emulator, worker_image_ref, tmp, "blaxel-faults")
    log_sources.watch_stack(stack, this_test_only=False)
    try:
        yield stack, stack.orchestrator(ORCH_START_RETRIES="2", ORCH_RECOVERY_POLL_SECONDS="0.5")
    finally:
        log_sources.forget_stack(stack)
        stack.close()
        stack.client.close()


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_blaxel_failing_during_a_worker_start_never_loses_the_session(
    served: tuple[Stack, Orchestrator], case: Case, fault_report: FaultReport
) -> None:
    stack, orchestrator = served
    rule = FaultRule(case.method, case.path, case.status, case.times, delay_s=case.delay_s)
    stack.server.emulator.faults.add(rule)
    try:
        session_id = stack.create_session()
        if case.down_until_logged:
            # Blaxel stays down: the work must not be claimed meanwhile, and the reason is logged.
            wait_for(
                lambda: orchestrator.logged(NOT_READY, session_id=session_id), "the logged reason"
            )
            live = stack.server.emulator.anthropic.live_work_for(session_id)
            assert [w.acknowledged_at for w in live] == [None]
            rule.times = rule.hits  # Blaxel recovers
        result = wait_for(lambda: outcome(stack, orchestrator, session_id), "the session's outcome")
    finally:
        rule.times = rule.hits  # spent: nothing of this case reaches the next one
        fault_report.faults_injected += rule.hits
    assert rule.hits >= 1, "the fault was never reached"

    starts = len(stack.worker_starts(session_id))
    fault_report.duplicate_workers += max(0, starts - 1)
    if result != case.expect:
        fault_report.sessions_lost += 1
    assert (result, starts) == (case.expect, 1 if case.expect == "served" else 0)
