"""The sandbox API's filesystem, through the SDK's `sandbox.fs`: the sandbox folder on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from blaxel.core import SandboxInstance
from blaxel.core.sandbox.types import ResponseError

from emulator.blaxel import BlaxelBackend, files


@pytest.mark.anyio
async def test_write_then_read_and_list(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "fs"})

    await sandbox.fs.write("/app/notes/a.txt", "hello")
    await sandbox.fs.mkdir("/app/notes/sub")
    content = await sandbox.fs.read("/app/notes/a.txt")
    listing = await sandbox.fs.ls("/app/notes")

    assert content == "hello"
    assert [(f.name, f.path, f.size) for f in listing.files] == [("a.txt", "/app/notes/a.txt", 5)]
    assert [d.path for d in listing.subdirectories] == ["/app/notes/sub"]
    assert (backend.get_sandbox("fs").root / "app" / "notes" / "a.txt").read_text() == "hello"


@pytest.mark.anyio
async def test_files_written_are_seen_by_processes(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "fs"})
    await sandbox.fs.write("/app/x.txt", "from fs")

    result = await sandbox.process.exec(
        {"command": "cat x.txt", "working_dir": "/app", "wait_for_completion": True}
    )

    assert result.stdout == "from fs"


@pytest.mark.anyio
async def test_binary_round_trip(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "fs"})
    data = bytes(range(256))

    await sandbox.fs.write_binary("/bin.dat", data)

    assert await sandbox.fs.read_binary("/bin.dat") == data


@pytest.mark.parametrize("path", ["/../../escape.txt", "../escape.txt", "/a/../../../escape.txt"])
def test_dotdot_cannot_leave_the_sandbox_folder(tmp_path: Path, path: str) -> None:
    assert files.sandbox_path(tmp_path, path) == tmp_path / "escape.txt"


@pytest.mark.anyio
async def test_rm_removes_and_missing_path_is_404(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "fs"})
    await sandbox.fs.write("/tmp/gone.txt", "x")

    await sandbox.fs.rm("/tmp/gone.txt")
    with pytest.raises(ResponseError) as caught:
        await sandbox.fs.read("/tmp/gone.txt")

    assert caught.value.status == 404
    assert caught.value.body == {"error": "path not found: /tmp/gone.txt"}


@pytest.mark.anyio
async def test_rm_of_non_empty_directory_needs_recursive(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "fs"})
    await sandbox.fs.write("/d/f.txt", "x")

    with pytest.raises(ResponseError) as caught:
        await sandbox.fs.rm("/d")
    await sandbox.fs.rm("/d", recursive=True)

    assert caught.value.status == 400
    assert not (backend.get_sandbox("fs").root / "d").exists()
