"""The fault suite's report, and its secret scan.

Every test adds to `REPORT` (through the `fault_report` fixture); `pytest_terminal_summary`
prints the totals: faults injected, bad inputs tried, up steps faulted, and the resources
leaked, sessions lost, duplicate workers and secrets logged found (all four must be 0).

Every test ends with the secret scan (`secret_scan`, autouse; tests/faults/secret_scan.py): no
secret value in plaintext in any log it produced. Fixtures that make emulators, stacks or
engine projects hand them to `log_sources`, so scenarios need nothing of their own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from tests.faults.secret_scan import LogSources, RecordCatcher, assert_no_secret_in, leaks
from tests.orchestrator_app.emulated import Stack, make_stack, push_worker_image


@dataclass
class FaultReport:
    """Counts over the whole run (leaks, lost sessions, duplicates and logged secrets stay 0)."""

    faults_injected: int = 0
    bad_inputs_tried: int = 0
    up_steps_faulted: int = 0
    resources_leaked: int = 0
    sessions_lost: int = 0
    duplicate_workers: int = 0
    secrets_logged: int = 0

    def line(self) -> str:
        return ", ".join(
            f"{f.name.replace('_', ' ')}: {getattr(self, f.name)}" for f in fields(self)
        )


@pytest.fixture(autouse=True, scope="package")
def _abandoned_futures_stay_in_the_fault_suite() -> Iterator[None]:
    """Keep a failed in-process up's abandoned futures from failing some later test.

    Pulumi's mocks run on the thread's current loop, which in a whole-suite run is anyio's
    session loop (tests/emulator/blaxel): its handler collects every "exception was never
    retrieved" and raises them all at the end of the session, in whichever test is last. The
    sweeps here fail ups on purpose, so while they run, and until their leftovers are collected,
    such reports are only logged.
    """
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
    except RuntimeError:
        # An earlier test in this process (asyncio.run, anyio) left the thread with no loop:
        # the sweeps' mocks then run on this one.
        loop = policy.new_event_loop()
        policy.set_event_loop(loop)
    previous = loop.get_exception_handler()
    loop.set_exception_handler(_log_abandoned)
    try:
        yield
    finally:
        gc.collect()
        loop.set_exception_handler(previous)


def _log_abandoned(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    logging.getLogger("tests.faults").debug("abandoned by a failed up: %s", context.get("message"))


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
def log_sources() -> LogSources:
    """Where the running scenarios log, and the secrets they hold (see secret_scan.py)."""
    return LogSources()


@pytest.fixture(autouse=True)
def secret_scan(log_sources: LogSources, fault_report: FaultReport) -> Iterator[None]:
    """After each test: no secret value in plaintext in any log the test produced."""
    log_sources.begin_test()
    catcher = RecordCatcher()
    root = logging.getLogger()
    level = root.level
    root.addHandler(catcher)
    root.setLevel(min(level, logging.INFO))  # INFO records too, not only the warnings
    try:
        yield
    finally:
        root.removeHandler(catcher)
        root.setLevel(level)
    logs, secrets = log_sources.logs(catcher.lines), log_sources.secrets()
    log_sources.end_test()
    fault_report.secrets_logged += len(leaks(logs, secrets))
    assert_no_secret_in(logs, secrets)


@pytest.fixture(scope="session")
def orchestrator_emulator(log_sources: LogSources) -> Iterator[EmulatorServer]:
    """One emulator for the suite's orchestrator tests (each makes its own environment)."""
    server = EmulatorServer(timing=fast_timing()).start()
    server.emulator.anthropic.webhook_retry_delays = (0.05, 0.1, 0.2)
    log_sources.watch_emulator(server)
    try:
        yield server
    finally:
        log_sources.forget_emulator(server)
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
    log_sources: LogSources,
) -> Iterator[Stack]:
    """A fresh environment on the shared emulator; its orchestrators are stopped at the end and
    the faults the test injected are counted."""
    made = make_stack(orchestrator_emulator, worker_image_ref, tmp_path, request.node.name[:40])
    log_sources.watch_stack(made)
    faults = orchestrator_emulator.emulator.faults
    before = faults.injected
    try:
        yield made
    finally:
        fault_report.faults_injected += faults.injected - before
        made.close()
        made.client.close()
        faults.reset()
