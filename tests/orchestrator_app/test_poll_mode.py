"""Poll mode's loop (issue 18) against the in-memory queue and sandboxes of test_dispatch.

The long-poll loop replaces the webhook: what it polls takes the path a drain's polls take
(duplicates, other kinds, other environments), with the same claim discipline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from anthropic import APIConnectionError

from orchestrator_app import dispatch
from orchestrator_app.dispatch import Dispatcher
from orchestrator_app.settings import Settings
from orchestrator_app.workers import worker_process_name
from tests.orchestrator_app.test_dispatch import MemoryQueue, item, make


async def run_until(dispatcher: Dispatcher, done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run the poll loop until `done()`, then stop it and every session task it spawned."""
    loop = asyncio.get_running_loop()
    poller = asyncio.create_task(dispatcher.poll_forever())
    deadline = loop.time() + timeout
    try:
        while not done():
            if loop.time() > deadline:
                raise AssertionError("the poll loop did not get there in time")
            await asyncio.sleep(0.01)
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        while dispatcher._tasks:
            await asyncio.gather(*(t for _, t in list(dispatcher._tasks.values())))
        await dispatcher.queue.client.close()


class Recording(MemoryQueue):
    """Records each poll's block_ms and whether the claim lock was held while it waited."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.blocks: list[int | None] = []
        self.claiming_held_while_blocked: list[bool] = []
        self.dispatcher: Dispatcher | None = None

    async def poll(self, block_ms: int | None = None) -> Any:
        self.blocks.append(block_ms)
        if block_ms is not None and self.dispatcher is not None:
            self.claiming_held_while_blocked.append(self.dispatcher._claiming.locked())
        return await super().poll(block_ms)


def recording(items: list[Any], **settings: Any) -> tuple[Dispatcher, Recording, Any]:
    dispatcher, _, sandboxes = make([], dispatch_mode="poll", poll_block_ms=20, **settings)
    queue = Recording(items)
    queue.dispatcher = dispatcher
    dispatcher.queue = queue
    return dispatcher, queue, sandboxes


def test_the_poll_loop_serves_each_polled_session_with_its_own_worker() -> None:
    dispatcher, queue, sandboxes = recording([item("work_1", "s1"), item("work_2", "s2")])
    asyncio.run(run_until(dispatcher, lambda: len(sandboxes.started) == 2))
    assert sorted(name for _, name, _ in sandboxes.started) == sorted(
        [worker_process_name("work_1"), worker_process_name("work_2")]
    )
    assert sorted(queue.acked) == ["work_1", "work_2"]
    # The loop's own polls are long polls with the configured wait.
    assert queue.blocks[0] == 20


def test_of_duplicates_the_poll_loop_serves_the_newest_and_stops_the_older() -> None:
    dispatcher, queue, sandboxes = recording(
        [item("work_old", "s1", age=0), item("work_new", "s1", age=5)]
    )
    asyncio.run(run_until(dispatcher, lambda: len(sandboxes.started) == 1))
    assert [name for _, name, _ in sandboxes.started] == [worker_process_name("work_new")]
    assert queue.acked == ["work_new"]
    assert queue.stopped == ["work_old"]


def test_the_blocking_poll_holds_no_claim_lock_while_it_waits() -> None:
    dispatcher, queue, sandboxes = recording([item("work_1", "s1")])
    # Served, and then a few empty long polls.
    asyncio.run(run_until(dispatcher, lambda: len(queue.claiming_held_while_blocked) >= 4))
    assert len(sandboxes.started) == 1
    assert queue.claiming_held_while_blocked and not any(queue.claiming_held_while_blocked)


def test_the_poll_loop_leaves_another_environments_item_and_releases_other_kinds() -> None:
    health = item("work_health", "x")
    health.data.type = "healthcheck"  # type: ignore[assignment]  # a kind we do not run
    foreign = item("work_foreign", "s9", environment_id="env_other")
    dispatcher, queue, sandboxes = recording([foreign, health, item("work_1", "s1")])
    asyncio.run(run_until(dispatcher, lambda: len(sandboxes.started) == 1))
    assert [name for _, name, _ in sandboxes.started] == [worker_process_name("work_1")]
    assert "work_foreign" not in queue.acked + queue.stopped
    assert "work_health" in queue.acked and "work_health" in queue.stopped


class Failing(Recording):
    """The first `failures` polls fail as an unreachable API does."""

    def __init__(self, items: list[Any], failures: int) -> None:
        super().__init__(items)
        self.failures = failures

    async def poll(self, block_ms: int | None = None) -> Any:
        if self.failures:
            self.failures -= 1
            raise APIConnectionError(request=httpx2.Request("GET", "http://127.0.0.1:9/work"))
        return await super().poll(block_ms)


def test_a_failing_poll_is_one_log_line_and_a_doubling_backoff_then_work_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dispatch, "POLL_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(dispatch, "POLL_BACKOFF_MAX_SECONDS", 0.03)
    dispatcher, _, sandboxes = make([], dispatch_mode="poll", poll_block_ms=20)
    dispatcher.queue = Failing([item("work_1", "s1")], failures=4)
    with caplog.at_level(logging.ERROR, logger="orchestrator_app.dispatch"):
        asyncio.run(run_until(dispatcher, lambda: len(sandboxes.started) == 1))
    failed = [r for r in caplog.records if r.msg == "work poll failed; polling again after a pause"]
    assert [r.retry_in_s for r in failed] == [0.01, 0.02, 0.03, 0.03]  # type: ignore[attr-defined]
    assert not any(r.exc_info for r in failed)
    assert dispatcher.metrics.totals()["failures"] == {"poll_failed": 4.0}


def task_names(loop: asyncio.AbstractEventLoop | None = None) -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks(loop)}


@pytest.mark.parametrize(("mode", "polls"), [("poll", True), ("webhook", False)])
def test_the_poll_loop_runs_in_the_apps_lifespan_in_poll_mode_only(
    offline_settings: Settings, mode: str, polls: bool
) -> None:
    from orchestrator_app.app import create_app

    settings = Settings.model_validate({**offline_settings.model_dump(), "dispatch_mode": mode})
    app = create_app(settings)

    async def on_dispatch_loop() -> set[str]:
        return task_names()

    async def scenario() -> tuple[set[str], set[str], set[str]]:
        async with app.router.lifespan_context(app) as state:
            assert state is not None
            dispatch = state["services"].dispatch
            running = await dispatch.run(on_dispatch_loop())
            on_web_loop = task_names()
        return running, on_web_loop, task_names(dispatch.loop)

    running, on_web_loop, after = asyncio.run(scenario())
    assert ("work-poll" in running) is polls
    assert "drainer" in running
    # The web loop runs none of the dispatch machinery.
    assert not on_web_loop & {"drainer", "work-poll", "janitor", "recovery"}
    assert "work-poll" not in after and "drainer" not in after
