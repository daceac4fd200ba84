"""Expiration policies really delete sandboxes (on the emulator's clock, which tests advance)."""

from __future__ import annotations

import asyncio

import pytest
from blaxel.core import SandboxInstance
from blaxel.core.sandbox.default.sandbox import SandboxAPIError

from emulator.blaxel import BlaxelBackend
from tests.emulator.blaxel.conftest import until_status

pytestmark = pytest.mark.anyio


def _policy(kind: str, value: str) -> dict[str, object]:
    return {"expiration_policies": [{"type": kind, "value": value, "action": "delete"}]}


async def test_ttl_max_age_deletes_the_sandbox_and_its_processes(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create(
        {"name": "aged", "lifecycle": _policy("ttl-max-age", "5m")}
    )
    await sandbox.process.exec({"command": "sleep 30", "keep_alive": True})

    backend.advance_clock(299)
    alive = await SandboxInstance.get("aged")
    backend.advance_clock(2)
    expired = await until_status("aged", "TERMINATED")

    assert alive.status == "DEPLOYED"
    assert alive.expires_in <= 1  # 300 s of max age, 299 of them advanced
    assert expired.status == "TERMINATED"
    assert [(d.name, d.reason) for d in backend.deleted_sandboxes] == [("aged", "expired")]
    assert backend.running_pids() == []


async def test_runtime_ttl_is_a_max_age(backend: BlaxelBackend) -> None:
    await SandboxInstance.create({"name": "ttl", "ttl": "10m"})

    backend.advance_clock(601)

    assert (await until_status("ttl", "TERMINATED")).status == "TERMINATED"


async def test_ttl_idle_counts_from_the_last_use(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create(
        {"name": "idle", "lifecycle": _policy("ttl-idle", "60s")}
    )

    backend.advance_clock(45)
    await sandbox.fs.write("/touch", "x")  # any call to the sandbox's API is activity
    backend.advance_clock(45)
    still_there = await SandboxInstance.get("idle")
    backend.advance_clock(16)

    assert still_there.status == "DEPLOYED"
    assert (await until_status("idle", "TERMINATED")).status == "TERMINATED"


async def test_a_running_keep_alive_process_keeps_an_idle_sandbox(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create(
        {"name": "busy", "lifecycle": _policy("ttl-idle", "60s")}
    )
    await sandbox.process.exec({"name": "srv", "command": "sleep 30", "keep_alive": True})

    backend.advance_clock(120)

    assert (await SandboxInstance.get("busy")).status == "DEPLOYED"


async def test_background_sweeper_expires_without_any_request(backend: BlaxelBackend) -> None:
    await SandboxInstance.create({"name": "swept", "lifecycle": _policy("ttl-max-age", "5m")})

    backend.clock_offset += 301  # moved without sweeping: the background task must notice
    for _ in range(500):  # the sweeper runs every 0.1 s; a loaded machine may take longer
        if backend.deleted_sandboxes:
            break
        await asyncio.sleep(0.02)

    assert [d.name for d in backend.deleted_sandboxes] == ["swept"]


async def test_terminated_record_is_forgotten_after_its_retention(backend: BlaxelBackend) -> None:
    await SandboxInstance.create({"name": "short-lived"})
    await SandboxInstance.delete("short-lived")
    await until_status("short-lived", "TERMINATED")

    backend.advance_clock(301)

    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.get("short-lived")
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("ttl-idle", "30s", "spec.lifecycle.expirationPolicies[0].value: minimum for ttl-idle is 60s"),
        ("ttl-max-age", "1m", "spec.lifecycle.expirationPolicies[0].value: minimum for ttl-max-age is 300s"),
        ("ttl-max-age", "soon", "spec.lifecycle.expirationPolicies[0].value: invalid duration 'soon' (use s, m, h, d or w units)"),
    ],
)  # fmt: skip
async def test_invalid_policies_are_refused(
    backend: BlaxelBackend, kind: str, value: str, message: str
) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "bad-policy", "lifecycle": _policy(kind, value)})

    assert caught.value.status_code == 400
    assert str(caught.value) == message
