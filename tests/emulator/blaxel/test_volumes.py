"""Volumes: created, attached to a sandbox at a mount path, surviving the sandbox."""

from __future__ import annotations

import pytest
from blaxel.core import SandboxInstance, VolumeInstance
from blaxel.core.client.errors import UnexpectedStatus
from blaxel.core.volume.volume import VolumeAPIError

from emulator.blaxel import BlaxelBackend

pytestmark = pytest.mark.anyio


async def test_volume_files_outlive_the_sandbox(backend: BlaxelBackend) -> None:
    await VolumeInstance.create({"name": "session-vol", "region": "us-pdx-1", "size": 1024})
    mount = [{"name": "session-vol", "mount_path": "/data"}]

    first = await SandboxInstance.create({"name": "vol-a", "volumes": mount})
    await first.fs.write("/data/kept.txt", "kept")
    await SandboxInstance.delete("vol-a")
    second = await SandboxInstance.create({"name": "vol-b", "volumes": mount})

    assert await second.fs.read("/data/kept.txt") == "kept"
    volume = (await VolumeInstance.get("session-vol")).volume
    assert volume.to_dict()["state"] == {"attachedTo": "sandbox:vol-b"}


async def test_volume_crud_and_errors(backend: BlaxelBackend) -> None:
    created = await VolumeInstance.create({"name": "v1", "region": "us-pdx-1"})
    listed = await VolumeInstance.list()
    with pytest.raises(VolumeAPIError) as duplicate:
        await VolumeInstance.create({"name": "v1", "region": "us-pdx-1"})
    await VolumeInstance.delete("v1")
    with pytest.raises(VolumeAPIError) as missing:
        await VolumeInstance.get("v1")

    assert created.name == "v1"
    assert [v.name for v in listed.data] == ["v1"]
    assert duplicate.value.status_code == 409
    assert missing.value.status_code == 404
    assert str(missing.value) == "Volume 'v1' not found"


async def test_attached_volume_cannot_be_deleted(backend: BlaxelBackend) -> None:
    await VolumeInstance.create({"name": "busy-vol", "region": "us-pdx-1"})
    await SandboxInstance.create(
        {"name": "holder", "volumes": [{"name": "busy-vol", "mount_path": "/data"}]}
    )

    with pytest.raises((VolumeAPIError, UnexpectedStatus)) as caught:
        await VolumeInstance.delete("busy-vol")

    assert caught.value.status == 400


async def test_sandbox_with_an_unknown_volume_is_refused(backend: BlaxelBackend) -> None:
    from blaxel.core.sandbox.default.sandbox import SandboxAPIError

    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create(
            {"name": "novol", "volumes": [{"name": "ghost", "mount_path": "/data"}]}
        )

    assert caught.value.status_code == 400
    assert str(caught.value) == "Volume 'ghost' not found"


async def test_a_volume_attached_elsewhere_cannot_be_attached_again(
    backend: BlaxelBackend,
) -> None:
    from blaxel.core.sandbox.default.sandbox import SandboxAPIError

    await VolumeInstance.create({"name": "one-vol", "region": "us-pdx-1"})
    mount = [{"name": "one-vol", "mount_path": "/data"}]
    await SandboxInstance.create({"name": "first-holder", "volumes": mount})

    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "second-holder", "volumes": mount})

    assert caught.value.status_code == 400
    assert str(caught.value) == "Volume 'one-vol' is already attached to sandbox:first-holder"
