"""Every step of `up` failing once, then the next `up` converges: nothing leaked or duplicated.

The providers run in-process (`InProcessEngine`: the project's program under Pulumi's mocks,
doing the engine's check / diff / create / update), so each step costs seconds, not a full
engine run; tests/faults/test_engine_faults.py keeps real-engine cases. A clean `up` lists the
steps (each request to the emulator, with run-specific names folded); then, for each step, a
fresh stack's `up` gets a 400 on exactly that request, the next `up` must succeed, a third must
change nothing, and the emulator must hold exactly one of each resource.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from tests.faults.conftest import FaultReport
from tests.faults.injection import Step, StepInjector, install
from tests.faults.inprocess_engine import InProcessEngine, UpFailed
from tests.faults.secret_scan import LogSources
from tests.orchestrator_app.emulated import console

# Providers run in this process here, so the SDK clients they leave to the garbage collector
# (harmless in the engine's short-lived provider host) show up as unclosed sockets.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ORCHESTRATOR_SANDBOX = "cma-orch-faults"
CREATE_SANDBOX = "/blaxel/v0/sandboxes"
CHANGES = ("create", "update", "create-replacement", "delete-replaced")


@pytest.fixture(scope="module")
def server(log_sources: LogSources) -> Iterator[EmulatorServer]:
    with EmulatorServer(timing=fast_timing()) as running:
        log_sources.watch_emulator(running)
        try:
            yield running
        finally:
            log_sources.forget_emulator(running)


def stack_values(server: EmulatorServer) -> dict[str, str]:
    c = server.config
    return {
        "cma:anthropicBaseUrl": c.anthropic_base_url,
        "cma:anthropicApiKey": c.anthropic_api_key,
        "blaxel:baseUrl": c.blaxel_base_url,
        "blaxel:workspace": c.blaxel_workspace,
        "blaxel:apiKey": c.blaxel_api_key,
        "blaxel:orchestratorSandboxName": ORCHESTRATOR_SANDBOX,
        "blaxel:orchestratorMemoryMb": "2048",
        "blaxel:workerMemoryMb": "2048",
    }


def steps_to_fail(seen: list[Step]) -> list[Step]:
    """The first request of each kind, and every sandbox create (pure)."""
    steps = []
    for step in seen:
        if "/work" in step.path:
            continue  # the orchestrator's own queue calls, not a provider's
        if step.occurrence == 1 or (step.method, step.path) == ("POST", CREATE_SANDBOX):
            # Both images take the same steps: their first is enough, but each sandbox create
            # (two image builds, then the orchestrator's sandbox) is a step of its own.
            steps.append(step)
    return list(dict.fromkeys(steps))


def clean_steps(
    injector: StepInjector, engine: InProcessEngine, values: dict[str, str]
) -> list[Step]:
    """The steps of one `up` with no fault, as the requests it made."""
    injector.arm(None)
    engine.up(values)
    return steps_to_fail(injector.seen)


def alive(server: EmulatorServer) -> dict[str, list[str]]:
    """What the emulator holds, folded to what a converged stack must hold exactly."""
    anthropic = server.emulator.anthropic.live_resources()
    blaxel = server.emulator.blaxel.live_resources()
    return {
        "environments": anthropic["environments"],
        "agents": anthropic["agents"],
        "webhook_endpoints": anthropic["webhook_endpoints"],
        "sandboxes": blaxel["sandboxes"],
        "previews": blaxel["previews"],
        "processes": blaxel["processes"],
        "volumes": blaxel["volumes"],
    }


def shape(live: dict[str, list[str]]) -> dict[str, Any]:
    """Counts for ids that differ per run, names for the rest."""
    return {
        "environments": len(live["environments"]),
        "agents": len(live["agents"]),
        "webhook_endpoints": len(live["webhook_endpoints"]),
        "sandboxes": sorted(live["sandboxes"]),
        "previews": sorted(live["previews"]),
        "processes": len(live["processes"]),
        "volumes": sorted(live["volumes"]),
    }


def excess(live: dict[str, list[str]], expected: dict[str, Any]) -> int:
    """How many resources the emulator holds beyond the expected shape."""
    got = shape(live)
    extra = 0
    for key, want in expected.items():
        have = got[key]
        extra += max(0, have - want) if isinstance(want, int) else len(set(have) - set(want))
    return extra


def digests(engine: InProcessEngine) -> dict[str, Any]:
    return {n: e.outs.get("digest") for n, e in engine.state.items() if "digest" in e.outs}


def changes_of_a_rerun(
    server: EmulatorServer, engine: InProcessEngine, values: dict[str, str] | None = None
) -> list[str]:
    """What one more `up` changed (provider calls, image pushes); must be nothing."""
    done, pushes = len(engine.ops), len(server.emulator.blaxel.image_pushes)
    before = digests(engine)
    engine.up(values or stack_values(server))
    changed = [op for op in engine.ops[done:] if op.split()[0] in CHANGES]
    changed += ["image push"] * (len(server.emulator.blaxel.image_pushes) - pushes)
    if changed and digests(engine) != before:
        # Another engineer changed worker/ or orchestrator_app/ under this test: look again.
        return changes_of_a_rerun(server, engine, values)
    return changed


def fail_once_then_converge(
    server: EmulatorServer, injector: StepInjector, step: Step, expected: dict[str, Any]
) -> tuple[list[str], int]:
    """Problems found for one step, and how many resources were leaked."""
    engine = InProcessEngine()
    injector.arm(step)
    with contextlib.suppress(UpFailed):
        engine.up(stack_values(server))
    fired = injector.fired
    injector.arm(None)
    problems: list[str] = [] if fired else [f"{step}: never reached"]
    leaked = 0
    try:
        engine.up(stack_values(server))
        changed = changes_of_a_rerun(server, engine)
        if changed:
            problems.append(f"{step}: the up after convergence still changed {changed}")
        leaked = excess(alive(server), expected)
        if shape(alive(server)) != expected:
            problems.append(f"{step}: converged to {shape(alive(server))}, not {expected}")
    except UpFailed as exc:
        problems.append(f"{step}: the next up failed: {exc}")
    finally:
        engine.destroy()
    left = sum(len(v) for v in alive(server).values())
    if left:
        problems.append(f"{step}: destroy left {alive(server)}")
        server.emulator.reset()
    return problems, leaked + left


# The sweep is the suite's longest test: its steps go to shards that xdist runs side by side
# (each shard lists the steps itself, from its own clean up, and takes every SHARDS-th one).
SHARDS = 3


@pytest.mark.parametrize("shard", range(SHARDS), ids=lambda k: f"shard {k + 1} of {SHARDS}")
def test_each_step_of_up_failing_once_converges_on_the_next_up_without_leaks(
    server: EmulatorServer, fault_report: FaultReport, shard: int
) -> None:
    injector = install(server)
    baseline = InProcessEngine()
    steps = clean_steps(injector, baseline, stack_values(server))
    expected = shape(alive(server))
    baseline.destroy()
    assert expected["environments"] == expected["agents"] == expected["processes"] == 1
    assert len(steps) >= 15, [str(s) for s in steps]

    problems: list[str] = []
    for step in steps[shard::SHARDS]:
        started = time.monotonic()
        found, leaked = fail_once_then_converge(server, injector, step, expected)
        print(f"{step}: {time.monotonic() - started:.1f} s, {found or 'ok'}")
        problems += found
        fault_report.up_steps_faulted += 1
        fault_report.resources_leaked += leaked
    fault_report.faults_injected += injector.injected
    assert not problems, "\n".join(problems)


def wired_values(server: EmulatorServer, engine: InProcessEngine) -> dict[str, str]:
    """The Console steps a user does after the first `up`: the stack config that follows."""
    environment_id = engine.state["cma-platform-environment"].id
    url = engine.state["cma-orchestrator-webhook"].outs["url"]
    key = console(server, "POST", f"/environments/{environment_id}/keys")["key"]
    hook = console(
        server, "POST", "/webhooks", json={"url": url, "events": ["session.status_run_started"]}
    )
    return {
        **stack_values(server),
        "cma:environmentKey": key,
        "cma:webhookSigningSecret": hook["secret"],
    }


def fail_once_while_wiring(
    server: EmulatorServer,
    injector: StepInjector,
    engine: InProcessEngine,
    step: Step,
    wired: dict[str, str],
) -> list[str]:
    """The wiring `up` fails at `step`; the next converges; a rerun changes nothing; then the
    stack goes back to unwired (an update too) for the next step."""
    injector.arm(step)
    with contextlib.suppress(UpFailed):
        engine.up(wired)
    problems = [] if injector.fired else [f"{step}: never reached"]
    injector.arm(None)
    try:
        engine.up(wired)
        if changed := changes_of_a_rerun(server, engine, wired):
            problems.append(f"{step}: the up after convergence still changed {changed}")
        processes = server.emulator.blaxel.live_resources()["processes"]
        if len(processes) != 1:
            problems.append(f"{step}: orchestrator processes after convergence: {processes}")
    except UpFailed as exc:
        problems.append(f"{step}: the next up failed: {exc}")
    engine.up(stack_values(server))
    return problems


@pytest.mark.parametrize("shard", range(2), ids=lambda k: f"shard {k + 1} of 2")
def test_each_step_of_the_wiring_up_failing_once_converges_on_the_next_up(
    server: EmulatorServer, fault_report: FaultReport, shard: int
) -> None:
    injector = install(server)
    engine = InProcessEngine()
    engine.up(stack_values(server))
    steps = clean_steps(injector, engine, wired := wired_values(server, engine))
    engine.up(stack_values(server))
    assert len(steps) >= 4, [str(s) for s in steps]

    problems: list[str] = []
    try:
        for step in steps[shard::2]:
            problems += fail_once_while_wiring(server, injector, engine, step, wired)
            fault_report.up_steps_faulted += 1
    finally:
        fault_report.faults_injected += injector.injected
        engine.destroy()
        for hook in server.emulator.anthropic.live_resources()["webhook_endpoints"]:
            console(server, "DELETE", f"/webhooks/{hook}")  # the user's Console step, undone
    leaked = sum(len(v) for v in alive(server).values())
    fault_report.resources_leaked += leaked
    assert not problems, "\n".join(problems)
    assert leaked == 0, alive(server)
