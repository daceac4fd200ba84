"""`WorkerSandboxes` against the emulated Blaxel, in process through the SDK: one worker process
per sandbox, a dead sandbox replaced, and another environment's sandbox never used nor deleted.

Each test uses its own session ids, so tests share one emulator without seeing each other.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from anthropic import AsyncAnthropic
from blaxel.core.sandbox.default.process import SandboxProcess
from blaxel.core.sandbox.default.sandbox import SandboxInstance

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from orchestrator_app.dispatch import Dispatcher, WorkQueue
from orchestrator_app.errors import BlaxelError
from orchestrator_app.sandboxes import WorkerSandboxes, close_blaxel, configure_blaxel
from orchestrator_app.settings import Settings
from orchestrator_app.workers import worker_sandbox_name
from tests.orchestrator_app.emulated import push_worker_image

T = TypeVar("T")


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(timing=fast_timing()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def worker_image_ref(emulator_server: EmulatorServer) -> str:
    return push_worker_image(emulator_server)


Run = Callable[[str, Callable[[WorkerSandboxes], Awaitable[T]]], T]


@pytest.fixture
def run(emulator_server: EmulatorServer, worker_image_ref: str) -> Run[Any]:
    """run(environment_id, scenario): the scenario with a configured WorkerSandboxes."""

    def runner(environment_id: str, scenario: Callable[[WorkerSandboxes], Awaitable[T]]) -> T:
        config = emulator_server.config
        settings = Settings.model_validate(
            {
                "environment_id": environment_id,
                "blaxel_base_url": config.blaxel_base_url,
                "blaxel_api_key": config.blaxel_api_key,
                "blaxel_workspace": config.blaxel_workspace,
                "worker_image": worker_image_ref,
                "worker_region": "us-pdx-1",
                "retry_base_seconds": 0.01,
            }
        )

        async def main() -> T:
            restore = configure_blaxel(settings)
            try:
                return await scenario(WorkerSandboxes(settings))
            finally:
                await close_blaxel()
                restore()

        return asyncio.run(main())

    return runner


def session() -> str:
    return "sesn_" + secrets.token_hex(6)


def request(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "command": "sleep 30",
        "working_dir": "/app",
        "env": {},
        "wait_for_completion": False,
        "keep_alive": False,
        "timeout": 0,
    }


def running_workers(server: EmulatorServer, sandbox: str) -> list[str]:
    processes = server.emulator.blaxel.get_sandbox(sandbox).processes.list()
    return [p.name for p in processes if p.name.startswith("worker-") and p.status == "running"]


def starts(server: EmulatorServer, sandbox: str) -> list[str]:
    return [s.name for s in server.emulator.blaxel.process_starts if s.sandbox == sandbox]


def test_a_worker_start_whose_answer_was_lost_starts_one_process(
    run: Run[bool], emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = session()
    original = SandboxProcess.exec
    lost: list[Any] = []

    async def exec_then_lose_the_answer(self: SandboxProcess, *args: Any, **kwargs: Any) -> Any:
        answer = await original(self, *args, **kwargs)
        if not lost:
            lost.append(answer)
            raise httpx.ReadError("connection reset after the request was applied")
        return answer

    monkeypatch.setattr(SandboxProcess, "exec", exec_then_lose_the_answer)

    async def scenario(sandboxes: WorkerSandboxes) -> bool:
        sandbox = await sandboxes.ensure_ready(sid)
        return await sandboxes.start_worker(sandbox, request("worker-lost-answer"))

    assert run("env_mine", scenario) is True
    assert lost, "the answer was never dropped"
    assert starts(emulator_server, worker_sandbox_name(sid)) == ["worker-lost-answer"]


def test_a_reclaimed_item_whose_worker_still_runs_starts_no_second_process(
    run: Run[list[bool]], emulator_server: EmulatorServer
) -> None:
    sid = session()

    async def scenario(sandboxes: WorkerSandboxes) -> list[bool]:
        sandbox = await sandboxes.ensure_ready(sid)
        first = await sandboxes.start_worker(sandbox, request("worker-item-1"))
        again = await sandboxes.start_worker(sandbox, request("worker-item-1"))
        return [first, again]

    assert run("env_mine", scenario) == [True, False]
    name = worker_sandbox_name(sid)
    assert starts(emulator_server, name) == ["worker-item-1"]
    assert running_workers(emulator_server, name) == ["worker-item-1"]


def test_a_newer_item_replaces_the_running_worker_so_one_process_runs(
    run: Run[bool], emulator_server: EmulatorServer
) -> None:
    sid = session()

    async def scenario(sandboxes: WorkerSandboxes) -> bool:
        sandbox = await sandboxes.ensure_ready(sid)
        await sandboxes.start_worker(sandbox, request("worker-item-old"))
        return await sandboxes.start_worker(sandbox, request("worker-item-new"))

    assert run("env_mine", scenario) is True
    name = worker_sandbox_name(sid)
    assert starts(emulator_server, name) == ["worker-item-old", "worker-item-new"]
    assert running_workers(emulator_server, name) == ["worker-item-new"]


def test_a_failed_worker_sandbox_is_deleted_and_recreated(
    run: Run[str], emulator_server: EmulatorServer
) -> None:
    sid = session()
    name = worker_sandbox_name(sid)
    blaxel = emulator_server.emulator.blaxel
    run("env_mine", lambda sandboxes: sandboxes.ensure_ready(sid))
    failed = blaxel.get_sandbox(name)
    failed.status = "FAILED"

    assert run("env_mine", lambda sandboxes: sandboxes.ensure_ready(sid)) == name
    assert [d.name for d in blaxel.deleted_sandboxes if d.name == name] == [name]
    fresh = blaxel.get_sandbox(name)
    assert fresh is not failed
    assert fresh.status == "DEPLOYED"


@pytest.fixture
def slow_deploys(emulator_server: EmulatorServer) -> Iterator[float]:
    """Sandboxes of this module's emulator stay DEPLOYING for 1 s during the test."""
    timing = emulator_server.emulator.config.timing
    before = timing.sandbox_deploy_s
    timing.update(sandbox_deploy_s=1.0)
    try:
        yield 1.0
    finally:
        timing.update(sandbox_deploy_s=before)


def counting_gets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names the orchestrator reads from the control plane (`SandboxInstance.get`)."""
    names: list[str] = []
    original = SandboxInstance.get.__func__  # type: ignore[attr-defined]

    async def get(cls: type[SandboxInstance], name: str) -> SandboxInstance:
        names.append(name)
        return await original(cls, name)

    monkeypatch.setattr(SandboxInstance, "get", classmethod(get))
    return names


def test_a_deploying_sandbox_is_ready_once_its_api_answers_with_no_status_polls(
    run: Run[Any],
    emulator_server: EmulatorServer,
    slow_deploys: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sid = session()
    name = worker_sandbox_name(sid)
    gets = counting_gets(monkeypatch)

    async def scenario(sandboxes: WorkerSandboxes) -> float:
        began = asyncio.get_running_loop().time()
        await sandboxes.ensure_ready(sid)
        return asyncio.get_running_loop().time() - began

    took = run("env_mine", scenario)
    # Ready only once deployed: the platform held the sandbox's first call that long.
    assert took >= slow_deploys
    assert emulator_server.emulator.blaxel.get_sandbox(name).status == "DEPLOYED"
    # Looked up before creating it, and once to reach its API: polling its status every
    # 0.1 s for the second it deploys made ten more.
    assert len(gets) <= 3, gets


def test_a_sandbox_that_fails_while_deploying_is_replaced(
    run: Run[Any], emulator_server: EmulatorServer, slow_deploys: float
) -> None:
    sid = session()
    name = worker_sandbox_name(sid)
    blaxel = emulator_server.emulator.blaxel

    async def scenario(sandboxes: WorkerSandboxes) -> str:
        readying = asyncio.create_task(sandboxes.ensure_ready(sid))
        while name not in blaxel.sandboxes:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        blaxel.fail_sandbox(name)  # its first call is held meanwhile
        return await readying

    assert run("env_mine", scenario) == name
    assert [d.name for d in blaxel.deleted_sandboxes if d.name == name] == [name]
    assert blaxel.get_sandbox(name).status == "DEPLOYED"


def test_a_sandbox_still_deploying_at_the_ready_timeout_is_an_error(
    emulator_server: EmulatorServer, worker_image_ref: str, slow_deploys: float
) -> None:
    config = emulator_server.config
    settings = Settings.model_validate(
        {
            "environment_id": "env_mine",
            "blaxel_base_url": config.blaxel_base_url,
            "blaxel_api_key": config.blaxel_api_key,
            "blaxel_workspace": config.blaxel_workspace,
            "worker_image": worker_image_ref,
            "worker_region": "us-pdx-1",
            "retry_base_seconds": 0.01,
            "sandbox_ready_timeout_seconds": 0.3,
        }
    )

    async def main() -> None:
        restore = configure_blaxel(settings)
        try:
            with pytest.raises(BlaxelError, match="is still DEPLOYING"):
                await WorkerSandboxes(settings).ensure_ready(session())
        finally:
            await close_blaxel()
            restore()

    asyncio.run(main())


class NoWorkQueue(WorkQueue):
    """A queue with no live item (the cleanup's only queue call)."""

    def __init__(self) -> None:
        super().__init__(AsyncAnthropic(base_url="http://127.0.0.1:9", auth_token="x"), "env_mine")

    async def live_items(self, session_id: str) -> list[Any]:
        return []


def test_another_environments_sandbox_is_neither_used_listed_nor_deleted(
    run: Run[Any], emulator_server: EmulatorServer
) -> None:
    sid = session()
    name = worker_sandbox_name(sid)
    run("env_other", lambda sandboxes: sandboxes.ensure_ready(sid))

    async def use(sandboxes: WorkerSandboxes) -> str:
        with pytest.raises(BlaxelError, match="belongs to another environment"):
            await sandboxes.ensure_ready(sid)
        return "refused"

    async def listed(sandboxes: WorkerSandboxes) -> list[str]:
        return [w.name for w in await sandboxes.list_workers()]

    async def end(sandboxes: WorkerSandboxes) -> None:
        dispatcher = Dispatcher(sandboxes.settings, NoWorkQueue(), sandboxes)
        await dispatcher._end(sid, "session.status_terminated")
        await dispatcher.queue.client.close()

    assert run("env_mine", use) == "refused"
    assert name not in run("env_mine", listed)
    assert name in run("env_other", listed)
    run("env_mine", end)
    assert emulator_server.emulator.blaxel.get_sandbox(name).status == "DEPLOYED"
    assert name not in [d.name for d in emulator_server.emulator.blaxel.deleted_sandboxes]
