"""Sandbox CRUD through the official SDK: create, get, list, update, delete, name rules, auth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from blaxel.core import SandboxInstance
from blaxel.core.client.client import client
from blaxel.core.client.models import Env
from blaxel.core.client.types import UNSET
from blaxel.core.sandbox.default.sandbox import SandboxAPIError

from emulator.blaxel import BlaxelBackend
from tests.emulator.blaxel.conftest import until_status

pytestmark = pytest.mark.anyio


async def test_create_answers_deploying_then_deployed_and_its_url_is_its_own_api(
    backend: BlaxelBackend,
) -> None:
    backend.timing.update(sandbox_deploy_s=0.3)
    sandbox = await SandboxInstance.create({"name": "box-1", "memory": 2048})
    deployed = await until_status("box-1", "DEPLOYED")

    assert sandbox.status == "DEPLOYING"
    assert deployed.status == "DEPLOYED"
    assert sandbox.metadata.name == "box-1"
    assert sandbox.metadata.url == backend.sandbox_url("box-1")
    assert sandbox.spec.runtime.memory == 2048
    assert sandbox.spec.runtime.image == "blaxel/base-image:latest"


async def test_get_and_list_see_the_created_sandbox(backend: BlaxelBackend) -> None:
    await SandboxInstance.create({"name": "box-a"})
    await SandboxInstance.create({"name": "box-b"})

    fetched = await SandboxInstance.get("box-a")
    page = await SandboxInstance.list()

    assert fetched.metadata.name == "box-a"
    assert [s.metadata.name for s in page.data] == ["box-a", "box-b"]


async def test_get_unknown_sandbox_is_404(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.get("nope")

    assert caught.value.status_code == 404
    assert str(caught.value) == "Sandbox 'nope' not found"


@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "double--hyphen", "a" * 50])
async def test_create_rejects_invalid_names_with_400(backend: BlaxelBackend, name: str) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": name})

    assert caught.value.status_code == 400
    assert str(caught.value).startswith(f"Invalid sandbox name '{name}'")
    assert backend.live_resources()["sandboxes"] == []


async def test_name_of_49_characters_is_accepted(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "a" * 49})

    assert sandbox.metadata.name == "a" * 49


async def test_create_twice_is_409_and_create_if_not_exists_returns_the_existing(
    backend: BlaxelBackend,
) -> None:
    first = await SandboxInstance.create({"name": "dup", "labels": {"run": "1"}})

    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "dup"})
    again = await SandboxInstance.create_if_not_exists({"name": "dup"})

    assert caught.value.status_code == 409
    assert str(caught.value) == "Sandbox 'dup' already exists"
    assert again.metadata.created_at == first.metadata.created_at
    assert again.metadata.labels.to_dict() == {"run": "1"}


async def test_env_values_are_masked_when_read_back_but_reach_processes(
    backend: BlaxelBackend,
) -> None:
    envs = [Env(name="TOKEN", value="s3cr3t", secret=True), Env(name="MODE", value="x")]
    created = await SandboxInstance.create({"name": "envs", "envs": envs})

    fetched = await SandboxInstance.get("envs")
    run = await created.process.exec({"command": "echo $TOKEN-$MODE", "wait_for_completion": True})

    shown = {e.name: (e.value, e.secret) for e in fetched.spec.runtime.envs}
    assert shown == {"TOKEN": ("****", True), "MODE": ("****", UNSET)}
    assert "s3cr3t" not in str(fetched.sandbox.to_dict())
    assert run.stdout == "s3cr3t-x\n"


async def test_update_ttl_round_trips_masked_envs_without_losing_their_values(
    backend: BlaxelBackend,
) -> None:
    await SandboxInstance.create(
        {"name": "upd", "envs": [{"name": "TOKEN", "value": "v1", "secret": True}]}
    )

    updated = await SandboxInstance.update_ttl("upd", "2h")
    run = await updated.process.exec({"command": "printf $TOKEN", "wait_for_completion": True})

    assert updated.spec.runtime.ttl == "2h"
    assert run.stdout == "v1"


async def test_update_metadata_merges_labels(backend: BlaxelBackend) -> None:
    from blaxel.core.sandbox.types import SandboxUpdateMetadata

    await SandboxInstance.create({"name": "lbl", "labels": {"a": "1"}})

    updated = await SandboxInstance.update_metadata("lbl", SandboxUpdateMetadata(labels={"b": "2"}))

    assert updated.metadata.labels.to_dict() == {"a": "1", "b": "2"}


async def test_update_unknown_sandbox_is_404(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.update_ttl("ghost", "1h")

    assert caught.value.status_code == 404


async def test_delete_terminates_keeps_the_record_and_frees_the_name(
    backend: BlaxelBackend,
) -> None:
    await SandboxInstance.create({"name": "gone"})

    deleted = await SandboxInstance.delete("gone")
    during = await SandboxInstance.get("gone")
    after = await until_status("gone", "TERMINATED")
    listed = await SandboxInstance.list()
    recreated = await SandboxInstance.create({"name": "gone"})

    assert deleted.status == "DELETING"
    assert during.status in ("DELETING", "TERMINATED")
    assert after.status == "TERMINATED"
    assert listed.data == []
    assert recreated.status == "DEPLOYING"
    assert [d.name for d in backend.deleted_sandboxes] == ["gone"]


async def test_delete_unknown_sandbox_is_404(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.delete("ghost")

    assert caught.value.status_code == 404
    assert str(caught.value) == "Sandbox 'ghost' not found"


async def test_ttl_shorter_than_five_minutes_is_refused(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "short", "ttl": "1m"})

    assert caught.value.status_code == 400
    assert str(caught.value) == "spec.runtime.ttl: minimum is 5m"


class _NoAuth(httpx.Auth):
    pass


async def test_missing_credentials_are_401(backend: BlaxelBackend) -> None:
    saved = client._auth
    client.with_auth(_NoAuth())
    try:
        with pytest.raises(SandboxAPIError) as caught:
            await SandboxInstance.get("any")
    finally:
        client.with_auth(saved)

    assert caught.value.status_code == 401
    assert str(caught.value).startswith("Authentication required")


async def _list_with_headers(headers: dict[str, str]) -> Any:
    """SandboxInstance.list() sending exactly these credential headers."""
    saved = client._auth
    client.with_auth(_NoAuth())
    client.with_headers(headers)
    try:
        return await SandboxInstance.list()
    finally:
        client.with_auth(saved)
        for name in headers:
            client._headers.pop(name)


async def test_wrong_key_is_403_authorization_failed(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await _list_with_headers(
            {"X-Blaxel-Authorization": "Bearer wrong", "X-Blaxel-Workspace": "test-ws"}
        )

    assert caught.value.status_code == 403
    assert str(caught.value) == "Authorization failed"


async def test_other_workspace_is_403(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await _list_with_headers(
            {"X-Blaxel-Authorization": "Bearer bl-test-key", "X-Blaxel-Workspace": "elsewhere"}
        )

    assert caught.value.status_code == 403
    assert str(caught.value) == "No access to workspace 'elsewhere'"


async def test_plain_authorization_bearer_is_accepted(backend: BlaxelBackend) -> None:
    await SandboxInstance.create({"name": "seen"})

    page = await _list_with_headers(
        {"Authorization": "Bearer bl-test-key", "X-Blaxel-Workspace": "test-ws"}
    )

    assert [s.metadata.name for s in page.data] == ["seen"]


async def test_list_pages_follow_the_cursor(backend: BlaxelBackend) -> None:
    for name in ("pg-a", "pg-b", "pg-c"):
        await SandboxInstance.create({"name": name})

    first = await SandboxInstance.list(limit=2)
    names = [s.metadata.name async for s in first.auto_paging_iter()]

    assert [s.metadata.name for s in first.data] == ["pg-a", "pg-b"]
    assert first.has_more
    assert names == ["pg-a", "pg-b", "pg-c"]
