"""Real-engine cases: a failed `up` re-run with the Pulumi CLI, and bad config values that a
`pulumi preview` must refuse naming each key, creating nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.faults import FaultRule
from tests.e2e.conftest import EndToEnd, e2e  # noqa: F401  (the fixture, reused as is)
from tests.faults.conftest import FaultReport
from tests.faults.secret_scan import LogSources

pytestmark = pytest.mark.engine


@pytest.fixture(autouse=True)
def _engine_output_scanned(e2e: EndToEnd, log_sources: LogSources) -> Iterator[None]:  # noqa: F811
    """The secret scan reads this test's engine output and its emulator's processes."""
    log_sources.watch_emulator(e2e.server)
    log_sources.watch_engine(e2e.project)
    yield
    log_sources.forget_emulator(e2e.server)


BAD_VALUES = {
    "cma:webhookMode": "sometimes",
    "cma:recoveryPollSeconds": "0",
    "cma:maxConcurrentStarts": "lots",
    "cma:anthropicBaseUrl": "not-a-url",
    "blaxel:orchestratorSandboxName": "Bad_Name",
    "blaxel:region": "US East!",
    "blaxel:workerMaxAge": "forever",
    "blaxel:orchestratorMemoryMb": "64",
    "cma:noSuchKey": "x",
}
BAD_SECRETS = {"cma:environmentKey": "not-an-environment-key"}


def live_count(e2e: EndToEnd) -> int:  # noqa: F811
    emulator = e2e.server.emulator
    return sum(len(v) for v in emulator.anthropic.live_resources().values()) + sum(
        len(v) for v in emulator.blaxel.live_resources().values()
    )


def test_bad_config_values_fail_the_preview_naming_each_key_and_create_nothing(
    e2e: EndToEnd,  # noqa: F811
    fault_report: FaultReport,
) -> None:
    for key, value in BAD_VALUES.items():
        e2e.project.set_config(key, value)
    for key, value in BAD_SECRETS.items():
        e2e.project.set_config(key, value, secret=True)
    fault_report.bad_inputs_tried += len(BAD_VALUES) + len(BAD_SECRETS)

    done = e2e.project.run("preview", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert [k for k in (*BAD_VALUES, *BAD_SECRETS) if k not in output] == []
    assert "not-an-environment-key" not in output  # a secret's value is never echoed
    leaked = live_count(e2e)
    fault_report.resources_leaked += leaked
    assert leaked == 0


def test_an_up_failing_at_the_server_start_converges_on_the_next_up(
    e2e: EndToEnd,  # noqa: F811
    fault_report: FaultReport,
) -> None:
    faults = e2e.server.emulator.faults
    faults.add(FaultRule(method="POST", path_pattern=r"/process$", status=500, times=20))
    failed = e2e.project.run("up", "--yes", "--skip-preview", check=False)
    fault_report.faults_injected += faults.injected
    assert failed.returncode != 0
    faults.reset()

    e2e.project.up()
    assert set(e2e.project.preview_changes()) == {"same"}
    anthropic = e2e.server.emulator.anthropic.live_resources()
    blaxel = e2e.server.emulator.blaxel.live_resources()
    # One environment, one agent, one server process; the orchestrator's sandbox and one build
    # sandbox per pushed image.
    counts = {
        "environments": len(anthropic["environments"]),
        "agents": len(anthropic["agents"]),
        "sandboxes": len(blaxel["sandboxes"]),
        "processes": len(blaxel["processes"]),
    }
    wanted = {"environments": 1, "agents": 1, "sandboxes": 3, "processes": 1}
    fault_report.resources_leaked += sum(max(0, counts[k] - wanted[k]) for k in wanted)
    assert counts == wanted
