"""A sandbox runs its image's entrypoint as it boots, and again when Blaxel rebuilds it."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from emulator.blaxel.boot import boot_command
from emulator.blaxel.images import Layout
from emulator.config import fast_timing
from emulator.server import EmulatorServer

# Started by the entrypoint through the sandbox's local API, as Blaxel's docs describe.
BOOT_SCRIPT = """
import os, httpx
api = os.environ.get("SANDBOX_API_URL", "http://127.0.0.1:8080")
httpx.post(api + "/process", json={"name": "served", "command": "sleep 60", "keepAlive": True},
           timeout=30).raise_for_status()
"""


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(timing=fast_timing()) as running:
        yield running


def headers(server: EmulatorServer) -> dict[str, str]:
    return {
        "X-Blaxel-Authorization": f"Bearer {server.config.blaxel_api_key}",
        "X-Blaxel-Workspace": server.config.blaxel_workspace,
    }


def push(server: EmulatorServer, name: str, dockerfile: str) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Dockerfile", dockerfile)
        zf.writestr("boot.py", BOOT_SCRIPT)
    return server.emulator.blaxel.images.push(name, archive.getvalue()).ref


def create(server: EmulatorServer, name: str, image: str) -> None:
    body = {"metadata": {"name": name}, "spec": {"runtime": {"image": image, "memory": 2048}}}
    answer = httpx.post(
        server.config.blaxel_base_url + "/sandboxes", json=body, headers=headers(server)
    )
    answer.raise_for_status()


def process_names(server: EmulatorServer, sandbox: str) -> list[str]:
    url = server.emulator.blaxel.sandbox_url(sandbox) + "/process"
    return [p["name"] for p in httpx.get(url, headers=headers(server)).json()]


def wait_for_run(server: EmulatorServer, sandbox: str, runs: int) -> None:
    """Until the sandbox has started `served` `runs` times (its process list keeps each run)."""
    deadline = time.monotonic() + 20
    while process_names(server, sandbox).count("served") < runs:
        assert time.monotonic() < deadline, process_names(server, sandbox)
        time.sleep(0.1)


def boot_sandbox(server: EmulatorServer, name: str) -> None:
    """A sandbox from an image whose entrypoint is the boot script, once it has run `served`."""
    image = push(
        server,
        name,
        'FROM python:3.11-slim\nWORKDIR /app\nCOPY boot.py /app/boot.py\nENTRYPOINT ["python", "boot.py"]\n',
    )
    create(server, name, image)
    wait_for_run(server, name, 1)


def test_the_entrypoint_starts_processes_through_the_local_api_at_boot_and_after_a_rebuild(
    server: EmulatorServer,
) -> None:
    boot_sandbox(server, "booting")
    # The entrypoint is the sandbox's PID 1, not one of its API processes.
    assert "boot" not in process_names(server, "booting")

    recreated = httpx.post(
        f"{server.config.public_base_url}/_emulator/blaxel/sandboxes/booting/recreate"
    )
    assert recreated.status_code == 200
    wait_for_run(server, "booting", 2)

    record = server.emulator.blaxel.get_sandbox("booting")
    boot = record.processes.boot
    assert boot is not None
    httpx.delete(
        server.config.blaxel_base_url + "/sandboxes/booting", headers=headers(server)
    ).raise_for_status()
    assert boot.wait(5) and not boot.running


def test_the_local_api_answers_only_its_own_sandboxes_token(server: EmulatorServer) -> None:
    answer = httpx.get(f"{server.config.public_base_url}/_emulator/blaxel/local/forged/process")
    assert answer.status_code == 404


def test_an_image_that_starts_only_the_sandbox_api_boots_nothing() -> None:
    assert boot_command(Layout(entrypoint=["/usr/local/bin/sandbox-api"])) is None
    assert boot_command(Layout()) is None
    assert boot_command(Layout(entrypoint=["python"], cmd=["-m", "app"])) == [
        "python",
        "-m",
        "app",
    ]


def test_stopping_the_emulator_kills_every_process_its_sandboxes_started() -> None:
    """The e2e fixture relies on this instead of a `pulumi destroy` after each test."""
    with EmulatorServer(timing=fast_timing()) as own:
        boot_sandbox(own, "left-running")
        pids = own.emulator.blaxel.running_pids()
        assert pids, "the boot script's process is running"

    for pid in pids:
        assert not pid_alive(pid), f"process {pid} outlived the emulator"


def pid_alive(pid: int) -> bool:
    """True while `pid` is a live process (a reaped or zombie one is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
