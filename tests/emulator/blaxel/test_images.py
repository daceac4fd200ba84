"""Image push: `ImageInstance.build()` uploads a build context; sandboxes from it hold its files."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import httpx
import pytest
from blaxel.core import ImageInstance, SandboxInstance
from blaxel.core.client.api.images import delete_image, get_image
from blaxel.core.client.client import client
from blaxel.core.client.models import Sandbox
from blaxel.core.sandbox.types import ResponseError

from emulator.blaxel import BlaxelBackend


@pytest.mark.anyio
async def test_built_image_is_pushed_and_a_sandbox_from_it_sees_its_files(
    backend: BlaxelBackend, tmp_path: Path
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "hello.txt").write_text("hi from the image")
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 42\n")
    image = (
        ImageInstance.from_registry("python:3.11-slim")
        .workdir("/app")
        .run_commands("pip install something-we-skip")
        .add_local_dir(str(tmp_path / "pkg"), "/app/pkg")
        .env(GREETING="hello")
    )
    statuses: list[str] = []

    built = await image.build(name="img-test", on_status_change=statuses.append)
    ref = str(built.spec.to_dict()["runtime"]["image"])
    sandbox = await SandboxInstance.create({"name": "from-img", "image": ref})
    result = await sandbox.process.exec(
        {
            "command": 'cat pkg/hello.txt; echo " $GREETING"; python -c "import pkg.mod as m; print(m.VALUE)"',
            "wait_for_completion": True,
        }
    )

    assert built.status == "DEPLOYED"
    assert statuses[-1] == "DEPLOYED" and len(statuses) >= 2
    assert ref.startswith("test-ws/sandbox/img-test:")
    assert backend.image_pushes[0].sandbox == "img-test"
    assert backend.image_pushes[0].bytes > 0
    assert result.stdout == "hi from the image hello\n42\n"
    assert result.working_dir == "/app"


@pytest.mark.anyio
async def test_latest_tag_and_short_spellings_resolve_to_the_last_deployed_push(
    backend: BlaxelBackend,
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Dockerfile", "FROM python:3.11-slim\n")
    pushed = backend.images.push("img-short", archive.getvalue())
    assert backend.images.resolve("img-short:latest") is None  # still building
    backend.images.deployed(pushed)

    for ref in ("img-short", "img-short:latest", "sandbox/img-short", "test-ws/sandbox/img-short"):
        assert backend.images.resolve(ref) is pushed, ref
    assert backend.images.resolve(pushed.ref) is pushed
    assert backend.images.resolve("img-short:other-tag") is None


@pytest.mark.anyio
async def test_a_sandbox_from_latest_gets_the_newest_deployed_version_and_keeps_it(
    backend: BlaxelBackend, tmp_path: Path
) -> None:
    async def build(version: str) -> None:
        (tmp_path / "version.txt").write_text(version)
        image = (
            ImageInstance.from_registry("python:3.11-slim")
            .workdir("/app")
            .add_local_file(str(tmp_path / "version.txt"), "/app/version.txt")
        )
        await image.build(name="tools-img")

    async def version_in(name: str) -> str:
        sandbox = await SandboxInstance.create({"name": name, "image": "sandbox/tools-img:latest"})
        return str(await sandbox.fs.read("/app/version.txt"))

    await build("1")
    first = await version_in("made-before")
    await build("2")
    kept = await (await SandboxInstance.get("made-before")).fs.read("/app/version.txt")
    second = await version_in("made-after")

    # Blaxel resolves :latest at creation; a sandbox keeps the version it was made from.
    assert (first, kept, second) == ("1", "1", "2")


@pytest.mark.anyio
async def test_unknown_image_gives_an_empty_sandbox_folder(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "empty", "image": "blaxel/base-image:latest"})

    listing = await sandbox.fs.ls("/")

    assert listing.files == []
    assert listing.subdirectories == []


@pytest.mark.anyio
async def test_a_bad_archive_fails_the_build(backend: BlaxelBackend) -> None:
    control = client.get_async_httpx_client()
    body = {"metadata": {"name": "bad-img"}, "spec": {"runtime": {"memory": 4096}}}

    put = await control.put("/sandboxes/bad-img", json=body, params={"upload": "true"})
    created = await control.post("/sandboxes", json=body, params={"upload": "true"})
    async with httpx.AsyncClient() as http:
        uploaded = await http.put(created.headers["x-blaxel-upload-url"], content=b"not a zip")
    status = (await SandboxInstance.get("bad-img")).status

    assert put.status_code == 404
    assert created.json()["status"] == "UPLOADING"
    assert uploaded.status_code == 200
    assert status == "FAILED"


@pytest.mark.anyio
async def test_upload_url_with_a_wrong_token_is_refused(backend: BlaxelBackend) -> None:
    control = client.get_async_httpx_client()
    body = {"metadata": {"name": "tok-img"}, "spec": {}}
    created = await control.post("/sandboxes", json=body, params={"upload": "true"})
    url = httpx.URL(created.headers["x-blaxel-upload-url"]).copy_set_param("token", "forged")

    async with httpx.AsyncClient() as http:
        response = await http.put(url, content=b"PK")
    await asyncio.sleep(0)

    assert response.status_code == 403
    assert backend.image_pushes == []


def _context(text: str) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Dockerfile", f"FROM python:3.11-slim\nENV V={text}\n")
    return archive.getvalue()


@pytest.mark.anyio
async def test_images_api_lists_gets_and_deletes_pushed_images(backend: BlaxelBackend) -> None:
    first = backend.images.push("tool", _context("1"))
    second = backend.images.push("tool", _context("2"))

    listed = await ImageInstance.list_async()
    tags = await ImageInstance.list_tags_async("sandbox", "tool")
    summary = await get_image.asyncio("sandbox", "tool", client=client)
    deleted = await delete_image.asyncio_detailed("sandbox", "tool", client=client)
    gone = await delete_image.asyncio_detailed("sandbox", "tool", client=client)

    assert [i.metadata.name for i in listed.data] == ["tool"]
    assert [t.name for t in tags.data] == [first.tag, second.tag]
    assert summary is not None and summary.spec.tag_count == 2
    assert deleted.status_code == 200
    assert gone.status_code == 404
    assert backend.images.resolve("tool") is None


@pytest.mark.anyio
async def test_sandbox_waiting_for_its_upload_answers_503_on_its_api(
    backend: BlaxelBackend,
) -> None:
    control = client.get_async_httpx_client()
    body = {"metadata": {"name": "pending-img"}, "spec": {}}
    created = await control.post("/sandboxes", json=body, params={"upload": "true"})
    record = Sandbox.from_dict(created.json())
    assert record is not None
    sandbox = SandboxInstance(record)

    with pytest.raises(ResponseError) as caught:
        await sandbox.process.list()

    assert caught.value.status == 503
    assert caught.value.body["error"]["code"] == "WORKLOAD_UNAVAILABLE"
