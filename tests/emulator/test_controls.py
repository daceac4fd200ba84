"""The emulator's test controls: fault injection in each platform's error shape, the clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import httpx
import pytest

from emulator.config import EmulatorConfig, fast_timing
from emulator.faults import FaultRule
from emulator.server import EmulatorServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(timing=fast_timing()) as running:
        yield running


def test_an_injected_anthropic_fault_reaches_the_sdk_as_that_status(server: EmulatorServer) -> None:
    server.emulator.faults.add(
        FaultRule(method="GET", path_pattern=r"/v1/environments$", status=409)
    )
    with anthropic.Anthropic(
        api_key=server.config.anthropic_api_key, base_url=server.config.anthropic_base_url
    ) as client:
        with pytest.raises(anthropic.ConflictError, match="injected fault"):
            client.beta.environments.list()
        assert list(client.beta.environments.list()) == []  # only once


def test_an_injected_blaxel_fault_has_blaxels_error_shape(server: EmulatorServer) -> None:
    server.emulator.faults.add(
        FaultRule(method="GET", path_pattern=r"/blaxel/v0/sandboxes", status=503)
    )
    answer = httpx.get(server.config.blaxel_base_url + "/sandboxes")
    assert answer.status_code == 503
    assert answer.json()["code"] == 503
    assert answer.json()["message"] == "injected fault"


def test_faults_are_added_and_counted_over_http(server: EmulatorServer) -> None:
    controls = server.config.public_base_url + "/_emulator"
    before = httpx.get(controls + "/faults").json()["injected"]
    added = httpx.post(controls + "/faults", json={"method": "GET", "path_pattern": "/v1/agents$"})
    assert added.status_code == 200
    assert httpx.get(server.config.anthropic_base_url + "/v1/agents").status_code == 500
    assert httpx.get(controls + "/faults").json()["injected"] == before + 1


def test_a_bad_fault_rule_is_refused_naming_the_problem(server: EmulatorServer) -> None:
    answer = httpx.post(server.config.public_base_url + "/_emulator/faults", json={"colour": 1})
    assert answer.status_code == 400
    assert "bad fault rule" in answer.json()["error"]


def test_the_clock_moves_both_platforms_forward(server: EmulatorServer) -> None:
    before = server.emulator.anthropic.clock.now()
    answer = httpx.post(server.config.public_base_url + "/_emulator/clock", json={"seconds": 3600})
    assert answer.status_code == 200
    assert (server.emulator.anthropic.clock.now() - before).total_seconds() >= 3600
    assert server.emulator.blaxel.clock_offset >= 3600


def _headers(server: EmulatorServer) -> dict[str, str]:
    return {
        "X-Blaxel-Authorization": f"Bearer {server.config.blaxel_api_key}",
        "X-Blaxel-Workspace": server.config.blaxel_workspace,
    }


def test_clock_reset_returns_both_platforms_to_real_time(server: EmulatorServer) -> None:
    controls = server.config.public_base_url + "/_emulator"
    httpx.post(controls + "/clock", json={"seconds": 7200})

    answer = httpx.delete(controls + "/clock")
    now = datetime.now(UTC)

    assert answer.status_code == 200
    assert abs((server.emulator.anthropic.clock.now() - now).total_seconds()) < 5
    assert abs(server.emulator.blaxel.now() - time.time()) < 5


def test_a_dropped_answer_applies_the_request_and_closes_the_connection(
    server: EmulatorServer,
) -> None:
    server.emulator.reset()
    server.emulator.faults.add(
        FaultRule(method="POST", path_pattern=r"/blaxel/v0/sandboxes$", action="drop_answer")
    )
    body = {"metadata": {"name": "dropped"}, "spec": {"runtime": {"memory": 4096}}}

    with pytest.raises(httpx.TransportError):
        httpx.post(
            server.config.blaxel_base_url + "/sandboxes", json=body, headers=_headers(server)
        )
    again = httpx.post(
        server.config.blaxel_base_url + "/sandboxes", json=body, headers=_headers(server)
    )

    assert server.emulator.blaxel.live_resources()["sandboxes"] == ["dropped"]
    assert again.status_code == 409
    assert again.json()["code"] == "SANDBOX_ALREADY_EXISTS"
    server.emulator.reset()


def test_a_fault_aimed_at_one_sandbox_spares_the_others(server: EmulatorServer) -> None:
    server.emulator.reset()
    for name in ("aimed", "spared"):
        body = {"metadata": {"name": name}, "spec": {}}
        httpx.post(
            server.config.blaxel_base_url + "/sandboxes", json=body, headers=_headers(server)
        )
    server.emulator.faults.add(
        FaultRule(method="GET", path_pattern="/blaxel/", sandbox="aimed", status=503, times=5)
    )

    aimed = httpx.get(server.config.blaxel_base_url + "/sandboxes/aimed", headers=_headers(server))
    spared = httpx.get(
        server.config.blaxel_base_url + "/sandboxes/spared", headers=_headers(server)
    )

    assert aimed.status_code == 503
    assert spared.status_code == 200
    server.emulator.reset()


def test_an_unknown_fault_action_is_refused(server: EmulatorServer) -> None:
    answer = httpx.post(
        server.config.public_base_url + "/_emulator/faults",
        json={"method": "*", "path_pattern": ".", "action": "explode"},
    )

    assert answer.status_code == 400
    assert "action must be one of" in answer.json()["error"]


def test_timing_is_configurable_over_http_and_refuses_unknown_names(
    server: EmulatorServer,
) -> None:
    controls = server.config.public_base_url + "/_emulator"

    changed = httpx.post(controls + "/timing", json={"sandbox_deploy_s": 0.01})
    refused = httpx.post(controls + "/timing", json={"warp": 1})

    assert changed.json()["sandbox_deploy_s"] == 0.01
    assert refused.status_code == 400
    assert "unknown timing 'warp'" in refused.json()["error"]
    server.emulator.reset()
    assert server.config.timing.sandbox_deploy_s == 0.05  # the fixture's fast_timing


def test_sandbox_fault_controls_fail_recreate_and_standby(server: EmulatorServer) -> None:
    server.emulator.reset()
    server.config.timing.update(sandbox_deploy_s=0)
    body = {"metadata": {"name": "victim"}, "spec": {}}
    httpx.post(server.config.blaxel_base_url + "/sandboxes", json=body, headers=_headers(server))
    controls = server.config.public_base_url + "/_emulator/blaxel/sandboxes/victim"
    sandbox_api = server.emulator.blaxel.sandbox_url("victim")
    httpx.put(sandbox_api + "/filesystem/tmp/note", json={"content": "x"}, headers=_headers(server))

    recreated = httpx.post(controls + "/recreate")
    note = httpx.get(sandbox_api + "/filesystem/tmp/note", headers=_headers(server))
    httpx.post(controls + "/standby")
    first = httpx.get(sandbox_api + "/filesystem/", headers=_headers(server))
    second = httpx.get(sandbox_api + "/filesystem/", headers=_headers(server))
    failed = httpx.post(controls + "/fail")

    assert recreated.json()["status"] == "DEPLOYED"
    assert note.status_code == 404
    assert (first.status_code, second.status_code) == (503, 200)
    assert failed.json()["status"] == "FAILED"
    server.emulator.reset()


def test_an_emulator_bug_is_recorded_and_answered_in_the_platform_shape(
    server: EmulatorServer,
) -> None:
    server.emulator.reset()

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    original = server.emulator.blaxel.list_sandboxes
    setattr(server.emulator.blaxel, "list_sandboxes", broken)  # noqa: B010
    try:
        answer = httpx.get(server.config.blaxel_base_url + "/sandboxes", headers=_headers(server))
    finally:
        setattr(server.emulator.blaxel, "list_sandboxes", original)  # noqa: B010
    recorded = list(server.emulator.unexpected_errors)
    server.emulator.reset()  # else stopping the server fails this module

    assert answer.status_code == 500
    assert answer.json()["message"] == "emulator bug"
    assert recorded and "KeyError" in recorded[0]


def test_the_work_secret_mode_is_set_over_http_and_checked(server: EmulatorServer) -> None:
    server.emulator.reset()
    with anthropic.Anthropic(
        api_key=server.config.anthropic_api_key, base_url=server.config.anthropic_base_url
    ) as client:
        environment = client.beta.environments.create(name="e", config={"type": "self_hosted"})
    controls = server.config.public_base_url + "/_emulator/anthropic/environments"

    set_ = httpx.post(f"{controls}/{environment.id}/work_secret", json={"mode": "absent"})
    bad = httpx.post(f"{controls}/{environment.id}/work_secret", json={"mode": "often"})
    unknown = httpx.post(f"{controls}/env_nope/work_secret", json={"mode": "full"})

    assert set_.json() == {"mode": "absent"}
    assert server.emulator.anthropic.work_secret_modes[environment.id] == "absent"
    assert bad.status_code == 400 and "mode: must be one of" in bad.json()["error"]
    assert unknown.status_code == 404
    server.emulator.reset()


def test_python_m_emulator_takes_the_sandbox_deploy_latency() -> None:
    """For the benchmark: `python -m emulator --sandbox-deploy-s S` sets the creation latency."""
    command = [sys.executable, "-m", "emulator", "--fast", "--sandbox-deploy-s", "0.6"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            config = json.loads(process.stdout.readline())
            headers = {
                "X-Blaxel-Authorization": f"Bearer {config['blaxel_api_key']}",
                "X-Blaxel-Workspace": config["blaxel_workspace"],
            }
            body = {"metadata": {"name": "timed"}, "spec": {}}
            url = config["blaxel_base_url"] + "/sandboxes"
            created = httpx.post(url, json=body, headers=headers)
            time.sleep(0.8)
            later = httpx.get(url + "/timed", headers=headers)
        finally:
            process.terminate()
            process.wait(timeout=20)

    assert created.json()["status"] == "DEPLOYING"
    assert later.json()["status"] == "DEPLOYED"


def _process_sandbox(server: EmulatorServer, name: str) -> str:
    """A deployed sandbox for process tests; its sandbox API URL."""
    server.emulator.reset()
    server.config.timing.update(sandbox_deploy_s=0)
    body = {"metadata": {"name": name}, "spec": {}}
    httpx.post(server.config.blaxel_base_url + "/sandboxes", json=body, headers=_headers(server))
    return server.emulator.blaxel.sandbox_url(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _until_runs(server: EmulatorServer, sandbox_api: str, count: int) -> str:
    """/runs once the process's runs have written `count` lines to it (each run writes one)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = httpx.get(sandbox_api + "/filesystem/runs", headers=_headers(server))
        if answer.status_code == 200 and answer.json()["content"].count("run") >= count:
            return str(answer.json()["content"])
        time.sleep(0.02)
    raise AssertionError(f"never {count} runs")


def test_a_crashed_restart_on_failure_process_fails_and_runs_again(
    server: EmulatorServer,
) -> None:
    """Blaxel reruns a *failed* `restartOnFailure` process (sandbox-api `shouldRestart`)."""
    sandbox_api = _process_sandbox(server, "crashy")
    request = {
        "name": "server",
        "command": "echo run >> runs; exec sleep 30",
        "workingDir": "/",
        "restartOnFailure": True,
        "maxRestarts": 3,
    }
    started = httpx.post(sandbox_api + "/process", json=request, headers=_headers(server)).json()
    controls = server.config.public_base_url + "/_emulator/blaxel/sandboxes/crashy"

    _until_runs(server, sandbox_api, 1)
    crashed = httpx.post(controls + "/processes/server/crash", timeout=10)
    after = httpx.get(sandbox_api + "/process/server", headers=_headers(server)).json()
    runs = _until_runs(server, sandbox_api, 2)

    assert crashed.status_code == 200
    assert not _pid_alive(crashed.json()["killedPid"])
    assert (after["status"], after["restartCount"]) == ("running", 1)
    assert after["pid"] == started["pid"]  # the API's pid is kept across runs
    assert runs.count("run") == 2
    server.emulator.reset()


def test_a_crashed_process_without_restart_reads_failed_with_exit_code_minus_one(
    server: EmulatorServer,
) -> None:
    """A signal-ended run reports -1 (Go `ExitError.ExitCode()`), status failed, not killed."""
    sandbox_api = _process_sandbox(server, "crashy")
    request = {"name": "once", "command": "exec sleep 30"}
    httpx.post(sandbox_api + "/process", json=request, headers=_headers(server))
    controls = server.config.public_base_url + "/_emulator/blaxel/sandboxes/crashy"

    crashed = httpx.post(controls + "/processes/once/crash", timeout=10)
    after = httpx.get(sandbox_api + "/process/once", headers=_headers(server)).json()
    again = httpx.post(controls + "/processes/once/crash", timeout=10)

    assert crashed.json()["status"] == "failed"
    assert (after["status"], after["exitCode"], after["restartCount"]) == ("failed", -1, 0)
    assert again.status_code == 404
    assert "is not running" in again.json()["error"]
    server.emulator.reset()


def test_crashing_an_unknown_sandbox_or_process_is_404(server: EmulatorServer) -> None:
    _process_sandbox(server, "crashy")
    controls = server.config.public_base_url + "/_emulator/blaxel/sandboxes"

    no_sandbox = httpx.post(controls + "/nowhere/processes/server/crash")
    no_process = httpx.post(controls + "/crashy/processes/ghost/crash")

    assert no_sandbox.status_code == 404
    assert "Sandbox 'nowhere' not found" in no_sandbox.json()["error"]
    assert no_process.status_code == 404
    assert "'ghost' not found" in no_process.json()["error"]
    server.emulator.reset()


def _thread_nicenesses() -> dict[int, int]:
    """This process's threads (Linux task ids) and the niceness of each."""
    tasks = [int(t) for t in os.listdir("/proc/self/task")]
    return {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in tasks}


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own niceness is Linux's")
def test_the_server_thread_runs_at_its_niceness_and_its_host_thread_keeps_its_own() -> None:
    # What the scheduling benchmark relies on (EmulatorConfig.server_niceness): the emulator,
    # in the benchmark's process, yields the CPU to the orchestrator it measures.
    before = _thread_nicenesses()
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with EmulatorServer(timing=fast_timing(), server_niceness=own + 3):
        started = {t: n for t, n in _thread_nicenesses().items() if t not in before}
        assert own + 3 in started.values()
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_a_server_niceness_outside_0_to_19_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="server_niceness"):
        EmulatorConfig(public_base_url="http://127.0.0.1:1", data_dir=tmp_path, server_niceness=-1)
