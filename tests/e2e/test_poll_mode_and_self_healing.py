"""Issue 18 end to end: poll mode (no public endpoint), and an orchestrator that heals itself.

Each test drives the real engine against its own emulator; a session is served by the
example client (`examples/run_session.py`), as a user would run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import EndToEnd
from tests.e2e.test_stack_semantics import by_type

pytestmark = pytest.mark.engine


def orchestrator_sandbox(e2e: EndToEnd, outputs: dict[str, Any]) -> Any:
    return e2e.server.emulator.blaxel.get_sandbox(outputs["orchestrator_sandbox"])


def test_poll_mode_serves_sessions_with_no_public_endpoint_and_switches_modes_in_place(
    e2e: EndToEnd,
) -> None:
    webhook_mode = e2e.up_fully_wired()
    sandbox = orchestrator_sandbox(e2e, webhook_mode)
    created_at = sandbox.created_at
    assert list(sandbox.previews) == ["public"]

    e2e.project.set_config("cma:dispatchMode", "poll")
    e2e.project.up()
    poll_mode = e2e.project.outputs()
    sandbox = orchestrator_sandbox(e2e, poll_mode)
    # The same sandbox, updated in place, with its public endpoint gone.
    assert sandbox.created_at == created_at
    assert sandbox.previews == {}
    assert poll_mode["orchestrator_url"] == "" and poll_mode["webhook_url"] == ""
    assert poll_mode["next_steps"] == []
    assert "pulumi-python:dynamic/cma:WebhookEndpoint" not in by_type(e2e.project)
    assert httpx.get(webhook_mode["orchestrator_url"] + "/health", timeout=10).status_code != 200
    deliveries = len(e2e.server.emulator.anthropic.deliveries)
    e2e.run_session()
    # Served by polling: no delivery reached the orchestrator (there is no URL to reach).
    assert not any(d.delivered for d in e2e.server.emulator.anthropic.deliveries[deliveries:])
    assert set(e2e.project.preview_changes()) == {"same"}

    e2e.project.set_config("cma:dispatchMode", "webhook")
    e2e.project.up()
    back = e2e.project.outputs()
    assert orchestrator_sandbox(e2e, back).created_at == created_at
    # The endpoint comes back under the same name, so the Console registration still holds.
    assert back["orchestrator_url"] == webhook_mode["orchestrator_url"]
    assert back["webhook_url"] == webhook_mode["webhook_url"]
    assert httpx.get(back["orchestrator_url"] + "/ready", timeout=10).status_code == 200
    e2e.run_session()


def test_the_orchestrator_comes_back_by_itself_after_a_crash_and_after_a_rebuild(
    e2e: EndToEnd,
) -> None:
    outputs = e2e.up_fully_wired()
    sandbox = outputs["orchestrator_sandbox"]
    process = f"orchestrator-r{outputs['orchestrator_revision']}"
    controls = f"{e2e.server.config.public_base_url}/_emulator/blaxel/sandboxes/{sandbox}"

    # A crash (SIGKILL, as an OOM kill): the platform reruns it (restartOnFailure).
    crashed = httpx.post(f"{controls}/processes/{process}/crash", timeout=10)
    assert crashed.status_code == 200, crashed.text
    record = e2e.server.emulator.blaxel.get_sandbox(sandbox).processes.get(process)
    wait_until(lambda: record.restart_count >= 1 and record.status == "running")
    e2e.run_session()

    # A rebuild (processes and files gone): the image's entrypoint starts the server again.
    assert httpx.post(f"{controls}/recreate", timeout=10).status_code == 200
    wait_until(lambda: ready(outputs["orchestrator_url"]))
    e2e.run_session()

    # Refresh finds the server running as `up` left it: nothing to change, nobody ran `up`.
    e2e.project.run("refresh", "--yes", "--skip-preview")
    assert set(e2e.project.preview_changes()) == {"same"}


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "not healed in time"
        time.sleep(0.2)
