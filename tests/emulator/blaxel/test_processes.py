"""The sandbox API's processes, through the SDK's `sandbox.process`: real local subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from blaxel.core import SandboxInstance
from blaxel.core.sandbox.types import ResponseError

from emulator.blaxel import BlaxelBackend

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
