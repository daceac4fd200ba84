"""The fault suite's report: what it tried and what it found, printed at the end of the run.

Every test adds to `REPORT` (through the `fault_report` fixture); `pytest_terminal_summary`
prints the totals: faults injected, bad inputs tried, up steps faulted, and the resources
leaked, sessions lost and duplicate workers found (all three must be 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from emulator.server import EmulatorServer
from tests.orchestrator_app.emulated import Stack, make_stack, push_worker_image


@dataclass
class FaultReport:
    """Counts over the whole run (leaks, lost sessions and duplicates must stay 0)."""

    faults_injected: int = 0
    bad_inputs_tried: int = 0
    up_steps_faulted: int = 0
    resources_leaked: int = 0
    sessions_lost: int = 0
    duplicate_workers: int = 0

    def line(self) -> str:
        return ", ".join(
            f"{f.name.replace('_', ' ')}: {getattr(self, f.name)}" for f in fields(self)
        )


REPORT = FaultReport()
_RAN = False


@pytest.fixture(scope="session")
def fault_report() -> FaultReport:
    global _RAN
    _RAN = True
    return REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _RAN:
        terminalreporter.write_sep("=", "fault suite")
        terminalreporter.write_line(REPORT.line())


@pytest.fixture(scope="session")
def orchestrator_emulator() -> Iterator[EmulatorServer]:
    """One emulator for the suite's orchestrator tests (each makes its own environment)."""
    server = EmulatorServer().start()
    server.emulator.anthropic.webhook_retry_delays = (0.05, 0.1, 0.2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def worker_image_ref(orchestrator_emulator: EmulatorServer) -> str:
    return push_worker_image(orchestrator_emulator)


@pytest.fixture
def stack(
    orchestrator_emulator: EmulatorServer,
    worker_image_ref: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    fault_report: FaultReport,
) -> Iterator[Stack]:
    """A fresh environment on the shared emulator; its orchestrators are stopped at the end and
    the faults the test injected are counted."""
    made = make_stack(orchestrator_emulator, worker_image_ref, tmp_path, request.node.name[:40])
    faults = orchestrator_emulator.emulator.faults
    before = faults.injected
    try:
        yield made
    finally:
        fault_report.faults_injected += faults.injected - before
        made.close()
        made.client.close()
        faults.reset()
