"""The whole stack through the real Pulumi engine against the emulator: the README's path."""

from __future__ import annotations

import json

import httpx
import pytest

from emulator.faults import FaultRule
from tests.e2e.conftest import EndToEnd

pytestmark = pytest.mark.engine

KINDS = ("environment", "agent", "image", "sandbox", "webhook", "server")


def resource_types(e2e: EndToEnd) -> list[str]:
    state = json.loads(e2e.project.run("stack", "export").stdout)
    return [r["type"] for r in state["deployment"].get("resources") or []]


def test_preview_from_nothing_plans_every_resource_and_creates_nothing(e2e: EndToEnd) -> None:
    changes = e2e.project.preview_changes()
    assert changes.get("create", 0) >= len(KINDS)
    assert set(changes) == {"create"}
    assert not any(e2e.server.emulator.anthropic.live_resources().values())
    assert not any(e2e.server.emulator.blaxel.live_resources().values())


def test_up_then_a_rerun_changes_nothing_pushes_nothing_and_restarts_nothing(e2e: EndToEnd) -> None:
    outputs = e2e.up_fully_wired()
    assert outputs["next_steps"] == []
    blaxel = e2e.server.emulator.blaxel
    pushes, starts = len(blaxel.image_pushes), len(blaxel.process_starts)

    assert set(e2e.project.preview_changes()) == {"same"}
    e2e.project.up()

    assert len(blaxel.image_pushes) == pushes, "a no-op up pushed an image"
    assert len(blaxel.process_starts) == starts, "a no-op up restarted a process"
    assert e2e.project.outputs() == outputs


def test_setting_the_signing_secret_restarts_the_server_in_place_behind_the_same_url(
    e2e: EndToEnd,
) -> None:
    e2e.project.up()
    before = e2e.project.outputs()
    assert before["next_steps"], "without the Console's values the stack says what is missing"
    sandboxes_before = dict(e2e.server.emulator.blaxel.sandboxes)

    e2e.console_steps()
    e2e.project.up()
    after = e2e.project.outputs()

    assert after["orchestrator_url"] == before["orchestrator_url"]
    assert after["webhook_url"] == before["webhook_url"]
    assert after["orchestrator_revision"] != before["orchestrator_revision"]
    assert set(e2e.server.emulator.blaxel.sandboxes) >= set(sandboxes_before)
    ready = httpx.get(after["orchestrator_url"] + "/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    unsigned = httpx.post(after["webhook_url"], json={"type": "session.status_run_started"})
    assert unsigned.status_code == 401


def test_a_session_is_served_end_to_end_by_a_worker_sandbox_of_the_stack(e2e: EndToEnd) -> None:
    e2e.up_fully_wired()
    assert "user.tool_result" in e2e.run_session()


def test_an_up_that_fails_midway_converges_on_the_next_up_without_duplicates(
    e2e: EndToEnd,
) -> None:
    faults = e2e.server.emulator.faults
    faults.add(FaultRule(method="POST", path_pattern=r"/previews$", status=500, times=10))
    failed = e2e.project.run("up", "--yes", "--skip-preview", check=False)
    assert failed.returncode != 0
    faults.reset()

    e2e.project.up()
    assert set(e2e.project.preview_changes()) == {"same"}
    emulator = e2e.server.emulator
    anthropic_live = emulator.anthropic.live_resources()
    assert len(anthropic_live["environments"]) == 1
    assert len(anthropic_live["agents"]) == 1
    # The orchestrator and one build sandbox per pushed image (the upload flow deploys one);
    # no worker, since no session ran.
    assert len(emulator.blaxel.live_resources()["sandboxes"]) == 3


def test_refresh_notices_a_sandbox_deleted_out_of_band(e2e: EndToEnd) -> None:
    outputs = e2e.up_fully_wired()
    e2e.server.emulator.blaxel.delete_sandbox(outputs["orchestrator_sandbox"])

    refreshed = e2e.project.run("refresh", "--yes")
    assert "deleted" in refreshed.stdout
    assert e2e.project.preview_changes().get("create", 0) >= 1


def test_destroy_leaves_nothing_in_the_emulator_and_the_public_url_answers_nothing(
    e2e: EndToEnd,
) -> None:
    outputs = e2e.up_fully_wired()
    e2e.project.run("destroy", "--yes")

    emulator = e2e.server.emulator
    assert not any(emulator.blaxel.live_resources().values())
    assert emulator.anthropic.live_resources()["environments"] == []
    assert emulator.anthropic.live_resources()["agents"] == []
    assert httpx.get(outputs["orchestrator_url"] + "/health", timeout=5).status_code == 404
    assert resource_types(e2e) == []


def test_the_exported_state_holds_no_secret_in_plaintext(e2e: EndToEnd) -> None:
    e2e.up_fully_wired()
    exported = e2e.project.run("stack", "export").stdout
    config_values = e2e.project.run("config", "--show-secrets", "--json").stdout
    secrets = [
        entry["value"]
        for entry in json.loads(config_values).values()
        if entry.get("secret") and entry.get("value")
    ]
    assert len(secrets) >= 4  # both API keys, the environment key, the signing secret
    for secret in secrets:
        assert secret not in exported
