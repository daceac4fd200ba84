"""The sandbox API's processes, through the SDK's `sandbox.process`: real local subprocesses."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from blaxel.core import SandboxInstance
from blaxel.core.sandbox.types import ResponseError

from emulator.blaxel import BlaxelBackend
from emulator.config import EmulatorConfig
from tests.emulator.blaxel.conftest import API_KEY, WORKSPACE

pytestmark = pytest.mark.anyio


async def _sandbox(name: str = "proc", **extra: object) -> SandboxInstance:
    return await SandboxInstance.create({"name": name, **extra})


async def test_exec_waiting_returns_exit_code_and_output(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()

    result = await sandbox.process.exec(
        {"command": "echo out; echo err >&2", "wait_for_completion": True}
    )

    assert (result.status, result.exit_code) == ("completed", 0)
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.completed_at != ""


async def test_processes_run_at_the_configured_niceness_children_included(
    backend: BlaxelBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the scheduling benchmark relies on (EmulatorConfig.sandbox_niceness): a sandbox's
    # processes take no CPU from the process under test. `nice` prints its own niceness.
    monkeypatch.setattr(backend, "config", dataclasses.replace(backend.config, sandbox_niceness=7))
    sandbox = await _sandbox()

    result = await sandbox.process.exec(
        {"command": "sleep 0.1; nice; sh -c nice", "wait_for_completion": True}
    )

    assert result.stdout == "7\n7\n"


async def test_a_process_leads_a_group_of_its_own_in_the_emulators_session(
    backend: BlaxelBackend,
) -> None:
    # A group of its own: stop and kill reach its children. The emulator's session: a session of
    # its own would be a scheduling autogroup of its own on Linux, where the niceness above
    # would count for nothing against the process under test.
    sandbox = await _sandbox()
    ids = "import os; print(os.getsid(0), os.getpgrp())"

    result = await sandbox.process.exec(
        {"command": f"{sys.executable} -c '{ids}'; true", "wait_for_completion": True}
    )

    session, group = map(int, result.stdout.split())
    assert session == os.getsid(0)
    assert group == int(result.pid)  # the shell the API started leads it


def test_a_niceness_outside_0_to_19_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sandbox_niceness"):
        EmulatorConfig(public_base_url="http://127.0.0.1:1", data_dir=tmp_path, sandbox_niceness=20)


async def test_non_zero_exit_is_reported_not_raised(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()

    result = await sandbox.process.exec({"command": "exit 3", "wait_for_completion": True})

    assert (result.status, result.exit_code) == ("failed", 3)


async def test_named_process_can_be_waited_for_and_its_logs_read(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()

    started = await sandbox.process.exec({"name": "job", "command": "sleep 0.2; echo done"})
    finished = await sandbox.process.wait("job", max_wait=10000, interval=100)
    logs = await sandbox.process.logs("job")

    assert started.status == "running"
    assert (finished.status, finished.exit_code) == ("completed", 0)
    assert logs == "done\n"


async def test_stop_and_kill_end_the_whole_process_group(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()
    await sandbox.process.exec({"name": "tree", "command": "sleep 30 & sleep 30; wait"})
    await sandbox.process.exec({"name": "hard", "command": "sleep 30"})

    await sandbox.process.stop("tree")
    await sandbox.process.kill("hard")
    stopped = await sandbox.process.wait("tree", max_wait=20000, interval=50)
    killed = await sandbox.process.wait("hard", max_wait=20000, interval=50)

    assert stopped.status == "stopped"
    assert killed.status == "killed"
    assert backend.running_pids() == []


async def test_process_name_in_use_by_a_running_process_is_400(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()
    await sandbox.process.exec({"name": "once", "command": "sleep 30"})

    with pytest.raises(ResponseError) as caught:
        await sandbox.process.exec({"name": "once", "command": "true"})

    assert caught.value.status == 400
    assert "already exists and is running" in str(caught.value)


async def test_unknown_process_is_404(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()

    with pytest.raises(ResponseError) as caught:
        await sandbox.process.get("missing")

    assert caught.value.status == 404


async def test_list_shows_every_process(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()
    await sandbox.process.exec({"name": "a", "command": "true", "wait_for_completion": True})
    await sandbox.process.exec({"name": "b", "command": "true", "wait_for_completion": True})

    listed = await sandbox.process.list()

    assert [p.name for p in listed] == ["a", "b"]


async def test_process_environment_is_sandbox_envs_process_env_port_and_our_python(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _sandbox(
        envs=[{"name": "FROM_SPEC", "value": "spec"}], ports=[{"target": 8000}]
    )

    result = await sandbox.process.exec(
        {
            "command": 'echo "$FROM_SPEC $FROM_CALL $PORT $DO_NOT_TRACK"; command -v python',
            "env": {"FROM_CALL": "call"},
            "wait_for_completion": True,
        }
    )

    stored = backend.get_sandbox("proc")
    first, python = result.stdout.splitlines()
    assert first == f"spec call {stored.ports[8000]} 1"
    assert Path(python).parent == Path(sys.executable).parent
    start = backend.process_starts[-1]
    assert {"FROM_SPEC", "FROM_CALL", "PORT"} <= set(start.env_names)


async def test_absolute_working_dir_is_mapped_inside_the_sandbox_folder(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _sandbox()

    result = await sandbox.process.exec(
        {
            "command": "echo hi > here.txt; pwd",
            "working_dir": "/app/work",
            "wait_for_completion": True,
        }
    )

    root = backend.get_sandbox("proc").root
    assert Path(result.stdout.strip()) == root / "app" / "work"
    assert (root / "app" / "work" / "here.txt").read_text() == "hi\n"
    assert result.working_dir == "/app/work"


async def test_timeout_kills_the_process(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()

    result = await sandbox.process.exec(
        {"command": "sleep 30", "timeout": 1, "wait_for_completion": True}
    )

    assert result.status == "killed"


async def test_stream_logs_delivers_each_line(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()
    lines: list[str] = []

    await sandbox.process.exec({"name": "talk", "command": "echo one; sleep 0.1; echo two"})
    handle = sandbox.process.stream_logs("talk", {"on_stdout": lines.append})
    await handle.wait()
    handle.close()

    assert lines == ["one", "two"]


async def test_deleting_the_sandbox_kills_its_processes(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()
    started = await sandbox.process.exec({"command": "sleep 30"})

    await SandboxInstance.delete("proc")

    assert int(started.pid) not in backend.running_pids()
    assert backend.running_pids() == []


async def test_wait_for_ports_returns_once_the_server_listens(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox(ports=[{"target": 8000}])

    started = await sandbox.process.exec(
        {
            "name": "srv",
            "command": "sleep 0.2; exec python -m http.server $PORT --bind 127.0.0.1",
            "wait_for_ports": [8000],
        }
    )
    response = await sandbox.fetch(8000, "/")

    assert started.status == "running"
    assert response.status_code == 200


async def test_exec_with_log_callbacks_delivers_the_output_lines(backend: BlaxelBackend) -> None:
    sandbox = await _sandbox()
    lines: list[str] = []

    result = await sandbox.process.exec(
        {"command": "echo a; echo b", "wait_for_completion": True, "on_stdout": lines.append}
    )

    assert lines == ["a", "b"]
    assert result.exit_code == 0


@pytest.mark.anyio
async def test_restart_on_failure_reruns_a_failed_process_up_to_max_restarts(
    backend: BlaxelBackend,
) -> None:
    """Sandbox API `restartOnFailure`/`maxRestarts` (SDK sandbox/client/models/process_request.py)."""
    sandbox = await SandboxInstance.create({"name": "restarts"})
    await sandbox.process.exec(
        {
            "name": "flaky",
            "command": "echo run >> runs; exit 3",
            "working_dir": "/",
            "restart_on_failure": True,
            "max_restarts": 2,
        }
    )

    done = await sandbox.process.wait("flaky", max_wait=10000, interval=50)
    runs = await sandbox.fs.read("/runs")

    assert done.restart_count == 2
    assert done.exit_code == 3
    assert runs.count("run") == 3


@pytest.mark.anyio
async def test_a_process_that_succeeds_is_not_restarted(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "no-restart"})
    await sandbox.process.exec(
        {"name": "ok", "command": "true", "restart_on_failure": True, "max_restarts": 5}
    )

    done = await sandbox.process.wait("ok", max_wait=10000, interval=50)

    assert done.restart_count == 0
    assert done.status == "completed"


# Restart semantics of the sandbox API (blaxel-ai/sandbox `sandbox-api/src/handler/process/`
# `shouldRestart`, `termination.go` `waitForRun`): docs/platform-contract.md row B21.


async def test_max_restarts_zero_means_no_restart_even_with_restart_on_failure(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _sandbox()
    await sandbox.process.exec(
        {"name": "zero", "command": "exit 3", "restart_on_failure": True, "max_restarts": 0}
    )

    done = await sandbox.process.wait("zero", max_wait=10000, interval=50)

    assert (done.status, done.exit_code, done.restart_count) == ("failed", 3, 0)


async def test_a_negative_max_restarts_reruns_without_limit_until_stopped(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _sandbox()
    started = await sandbox.process.exec(
        {"name": "forever", "command": "exit 1", "restart_on_failure": True, "max_restarts": -1}
    )
    process = backend.get_process_record("proc", "forever")
    deadline = time.monotonic() + 10
    while process.restart_count < 5 and time.monotonic() < deadline:
        await anyio.sleep(0.02)

    running = await sandbox.process.get("forever")
    await sandbox.process.stop("forever")
    stopped = await sandbox.process.wait("forever", max_wait=10000, interval=50)

    assert process.restart_count >= 5  # past any finite default
    assert running.status == "running"  # between runs it still reads running
    assert running.pid == started.pid
    assert stopped.status == "stopped"


async def test_a_kill_through_the_api_is_not_a_failure_and_is_not_restarted(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _sandbox()
    await sandbox.process.exec(
        {"name": "k", "command": "sleep 30", "restart_on_failure": True, "max_restarts": 3}
    )

    await sandbox.process.kill("k")
    done = await sandbox.process.wait("k", max_wait=10000, interval=50)

    assert (done.status, done.exit_code, done.restart_count) == ("killed", -1, 0)


async def _until_runs(sandbox: SandboxInstance, count: int) -> None:
    """Until the process's runs have written `count` lines to /runs (each run writes one)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if (await sandbox.fs.read("/runs")).count("run") >= count:
                return
        except ResponseError:
            pass  # not written yet
        await anyio.sleep(0.02)
    raise AssertionError(f"never {count} runs")


async def test_a_crash_reruns_the_process_and_a_stop_in_the_pause_cancels_the_next_run(
    backend: BlaxelBackend,
) -> None:
    backend.timing.update(process_restart_s=0.5)
    sandbox = await _sandbox()
    await sandbox.process.exec(
        {
            "name": "srv",
            "command": "echo run >> runs; exec sleep 30",
            "working_dir": "/",
            "restart_on_failure": True,
            "max_restarts": 5,
        }
    )
    await _until_runs(sandbox, 1)

    first = await anyio.to_thread.run_sync(backend.crash_process, "proc", "srv")
    process = backend.get_process_record("proc", "srv")
    second = process.os_pid
    await _until_runs(sandbox, 2)
    os.killpg(second, signal.SIGKILL)  # a second crash: now in the pause before run three
    await anyio.sleep(0.1)
    await sandbox.process.stop("srv")
    done = await sandbox.process.wait("srv", max_wait=10000, interval=50)
    runs = await sandbox.fs.read("/runs")

    assert first != second
    assert (done.status, done.restart_count) == ("stopped", 2)
    assert runs.count("run") == 2  # the stopped pause started no third run


async def test_restart_fields_of_the_wrong_type_are_refused_naming_the_field(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _sandbox()
    url = sandbox.metadata.url + "/process"
    headers = {"X-Blaxel-Authorization": f"Bearer {API_KEY}", "X-Blaxel-Workspace": WORKSPACE}

    async with httpx.AsyncClient() as http:
        limit = await http.post(
            url, json={"command": "true", "maxRestarts": "three"}, headers=headers
        )
        flag = await http.post(
            url, json={"command": "true", "restartOnFailure": "yes"}, headers=headers
        )

    assert limit.status_code == 400
    assert "maxRestarts must be an integer" in limit.json()["error"]
    assert flag.status_code == 400
    assert "restartOnFailure must be a boolean" in flag.json()["error"]
