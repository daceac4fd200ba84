"""The backend's own hooks: reset, leak listing, and a redeploy when the image changes."""

from __future__ import annotations

import io
import zipfile

import pytest
from blaxel.core import SandboxInstance
from blaxel.core.client.api.compute.update_sandbox import asyncio as update_sandbox
from blaxel.core.client.client import client

from emulator.blaxel import BlaxelBackend

pytestmark = pytest.mark.anyio


def _context(files: dict[str, str], dockerfile: str) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Dockerfile", dockerfile)
        for name, text in files.items():
            zf.writestr(name, text)
    return archive.getvalue()


async def test_reset_kills_processes_and_forgets_everything(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "r", "ports": [{"target": 3000}]})
    await sandbox.process.exec({"name": "long", "command": "sleep 30"})
    await sandbox.previews.create({"metadata": {"name": "p"}, "spec": {"port": 3000}})
    before = backend.live_resources()

    backend.reset()

    assert before == {
        "sandboxes": ["r"],
        "previews": ["r/p"],
        "volumes": [],
        "processes": ["r/long"],
    }
    assert backend.live_resources() == {
        "sandboxes": [],
        "previews": [],
        "volumes": [],
        "processes": [],
    }
    assert backend.running_pids() == []


async def test_changing_the_image_redeploys_the_sandbox_folder(backend: BlaxelBackend) -> None:
    dockerfile = "FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\nRUN pip install nothing\n"
    v1 = backend.images.push("svc", _context({"version.txt": "1"}, dockerfile))
    v2 = backend.images.push("svc", _context({"version.txt": "2"}, dockerfile))
    sandbox = await SandboxInstance.create({"name": "svc-run", "image": v1.ref})
    first = await sandbox.fs.read("/app/version.txt")

    updated = await SandboxInstance.get("svc-run")
    record = updated.sandbox
    record.spec.runtime.image = v2.ref  # type: ignore[union-attr]
    await update_sandbox("svc-run", client=client, body=record)
    second = await sandbox.fs.read("/app/version.txt")

    assert (first, second) == ("1", "2")


async def test_dockerfile_env_workdir_and_copy_forms_are_applied(backend: BlaxelBackend) -> None:
    dockerfile = (
        "FROM python:3.11-slim AS base\n"
        "ARG IGNORED=1\n"
        "ENV APP_HOME=/srv/app LEGACY value with spaces\n"
        'ENV QUOTED="a b"\n'
        "WORKDIR $APP_HOME\n"
        "COPY --from=ghcr.io/blaxel-ai/sandbox:latest /sandbox-api /usr/local/bin/sandbox-api\n"
        'COPY ["conf/settings.toml", "conf/"]\n'
        "COPY src/ ./src\n"
        "ADD notes.txt /docs/notes.txt\n"
    )
    context = {"conf/settings.toml": "x=1", "src/main.py": "print(1)", "notes.txt": "n"}
    image = backend.images.push("forms", _context(context, dockerfile))
    sandbox = await SandboxInstance.create({"name": "forms-run", "image": image.ref})

    result = await sandbox.process.exec(
        {
            "command": 'echo "$APP_HOME|$QUOTED"; ls conf src; cat /dev/null',
            "wait_for_completion": True,
        }
    )
    root = backend.get_sandbox("forms-run").root

    assert result.working_dir == "/srv/app"
    assert result.stdout.splitlines()[0] == "/srv/app|a b"
    assert (root / "srv/app/conf/settings.toml").read_text() == "x=1"
    assert (root / "srv/app/src/main.py").read_text() == "print(1)"
    assert (root / "docs/notes.txt").read_text() == "n"
    assert not (root / "usr/local/bin/sandbox-api").exists()
