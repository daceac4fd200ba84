"""The orchestrator killed (SIGKILL) mid-dispatch and a new one started: no session is lost and
none gets a second worker.

At the kill one session was served already, one was claimed with its worker start hanging
(Blaxel answering slowly with errors), and one more arrives while no orchestrator runs (its
webhook is lost). The claimed item's lease must lapse before the queue offers it again, as on
the real platform: the emulated clock is moved past the lease instead of waiting 5 minutes.
"""

from __future__ import annotations

from emulator.anthropic.work import DEFAULT_LEASE_TTL
from emulator.faults import FaultRule
from tests.faults.conftest import FaultReport
from tests.faults.test_blaxel_faults import START
from tests.orchestrator_app.conftest import new_signing_secret
from tests.orchestrator_app.emulated import Stack, wait_for


def test_an_orchestrator_killed_mid_dispatch_and_restarted_loses_no_session(
    stack: Stack, fault_report: FaultReport
) -> None:
    emulator = stack.server.emulator
    first = stack.orchestrator()
    served = stack.create_session()
    stack.say(served, "bash: echo served before the kill")
    wait_for(lambda: not emulator.anthropic.live_work_for(served), "the first session's end")

    hang = emulator.faults.add(FaultRule("POST", START, 503, times=1000, delay_s=1.0))
    claimed = stack.create_session()
    wait_for(lambda: first.logged("work claimed", session_id=claimed), "the claim")
    wait_for(lambda: hang.hits >= 1, "the worker start in flight")
    assert first.process is not None
    first.process.kill()
    first.process.wait(10)
    hang.times = hang.hits  # Blaxel is fine again
    fault_report.faults_injected += hang.hits
    missed = stack.create_session()  # its webhook finds no orchestrator

    emulator.anthropic.clock.advance(DEFAULT_LEASE_TTL + 1)
    try:
        stack.orchestrator(
            webhook=False,
            ORCH_WEBHOOK_SIGNING_SECRET=new_signing_secret(),
            ORCH_RECOVERY_POLL_SECONDS="0.5",
        )
        sessions = (served, claimed, missed)
        wait_for(
            lambda: all(stack.worker_starts(s) for s in sessions), "a worker for every session"
        )
    finally:
        emulator.anthropic.clock.advance(-(DEFAULT_LEASE_TTL + 1))
    starts = {s: len(stack.worker_starts(s)) for s in sessions}
    fault_report.sessions_lost += sum(1 for n in starts.values() if n == 0)
    fault_report.duplicate_workers += sum(max(0, n - 1) for n in starts.values())
    assert starts == {served: 1, claimed: 1, missed: 1}
