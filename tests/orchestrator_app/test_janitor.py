"""The janitor's reconciliation table, with the Blaxel and Anthropic answers in memory."""

from __future__ import annotations

import asyncio

from orchestrator_app.dispatch import Dispatcher, SessionStatus
from orchestrator_app.janitor import janitor_pass
from orchestrator_app.sandboxes import WorkerSandbox
from orchestrator_app.workers import worker_sandbox_name
from tests.orchestrator_app.test_dispatch import MemoryQueue, MemorySandboxes, make


class Statuses(MemoryQueue):
    def __init__(self, statuses: dict[str, SessionStatus]) -> None:
        super().__init__([])
        self.statuses = statuses

    async def session_status(self, session_id: str) -> SessionStatus:
        return self.statuses[session_id]


class Listed(MemorySandboxes):
    def __init__(self, base: MemorySandboxes, running: dict[str, str | None]) -> None:
        super().__init__(base.settings)
        self.running_by_sandbox = running
        self.deleted: list[str] = []
        self.volumes: list[tuple[str, str]] = []
        self.deleted_volumes: list[str] = []

    async def list_workers(self) -> list[WorkerSandbox]:
        return [
            WorkerSandbox(worker_sandbox_name(s), s, "DEPLOYED") for s in self.running_by_sandbox
        ]

    async def running_worker(self, sandbox_name: str) -> str | None:
        by_name = {worker_sandbox_name(s): r for s, r in self.running_by_sandbox.items()}
        return by_name[sandbox_name]

    async def owned(self, sandbox_name: str) -> bool:
        return True

    async def delete(self, sandbox_name: str) -> None:
        self.deleted.append(sandbox_name)

    async def list_worker_volumes(self) -> list[tuple[str, str]]:
        return self.volumes

    async def delete_volume(self, volume_name: str) -> None:
        self.deleted_volumes.append(volume_name)


def janitor(
    statuses: dict[str, SessionStatus], running: dict[str, str | None]
) -> tuple[Dispatcher, Listed]:
    dispatcher, _, base = make([])
    dispatcher.queue = Statuses(statuses)
    dispatcher.sandboxes = sandboxes = Listed(base, running)
    return dispatcher, sandboxes


async def one_pass(dispatcher: Dispatcher) -> None:
    await janitor_pass(dispatcher)
    while dispatcher._tasks:
        await asyncio.gather(*(t for _, t in list(dispatcher._tasks.values())))
    await dispatcher.queue.client.close()


def run(dispatcher: Dispatcher) -> None:
    asyncio.run(one_pass(dispatcher))


def test_an_ended_sessions_sandbox_is_deleted_whatever_its_worker() -> None:
    dispatcher, sandboxes = janitor(
        {"gone": "ended", "gone-running": "ended"}, {"gone": None, "gone-running": "worker-1"}
    )
    run(dispatcher)
    assert sorted(sandboxes.deleted) == sorted(
        [worker_sandbox_name("gone"), worker_sandbox_name("gone-running")]
    )


def test_a_running_session_without_a_worker_is_re_dispatched() -> None:
    dispatcher, sandboxes = janitor({"s1": "running"}, {"s1": None})
    run(dispatcher)
    assert dispatcher._wake.is_set()
    assert sandboxes.deleted == []


def test_a_running_session_with_its_worker_and_an_idle_one_are_left_alone() -> None:
    dispatcher, sandboxes = janitor(
        {"busy": "running", "idle": "idle"}, {"busy": "worker-1", "idle": None}
    )
    run(dispatcher)
    assert not dispatcher._wake.is_set()
    assert sandboxes.deleted == []


def test_a_volume_whose_sandbox_is_gone_is_deleted_and_one_in_use_is_kept() -> None:
    dispatcher, sandboxes = janitor({"s1": "idle"}, {"s1": None})
    sandboxes.volumes = [("v-s1", "s1"), ("v-expired", "expired")]
    run(dispatcher)
    assert sandboxes.deleted_volumes == ["v-expired"]


def test_a_session_with_a_task_in_flight_is_skipped() -> None:
    async def scenario() -> list[str]:
        dispatcher, sandboxes = janitor({"s1": "ended"}, {"s1": None})
        blocker = asyncio.Event()

        async def in_flight() -> None:
            await blocker.wait()

        dispatcher._schedule("s1", "dispatch", in_flight)
        await janitor_pass(dispatcher)
        deleted = list(sandboxes.deleted)
        blocker.set()
        await asyncio.sleep(0)
        await dispatcher.shutdown()
        await dispatcher.queue.client.close()
        return deleted

    assert asyncio.run(scenario()) == []
