"""Dispatcher rules that need no API: duplicate detection and the bound on concurrent starts.

The bound is checked with a WorkerSandboxes whose one Blaxel-facing call is replaced by a
counter (the emulator creates sandboxes instantly, so concurrency is not visible there).
"""

from __future__ import annotations

import asyncio

from anthropic import AsyncAnthropic

from orchestrator_app.dispatch import Dispatcher, WorkQueue
from orchestrator_app.sandboxes import WorkerSandboxes
from orchestrator_app.settings import Settings


class CountingSandboxes(WorkerSandboxes):
    """ensure_ready that only counts how many run at once."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.running = 0
        self.most = 0

    async def ensure_ready(self, session_id: str) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        return f"w-{session_id}"


def _dispatcher(max_starts: int = 8) -> tuple[Dispatcher, CountingSandboxes]:
    settings = Settings.model_validate({"max_concurrent_starts": max_starts})
    sandboxes = CountingSandboxes(settings)
    queue = WorkQueue(AsyncAnthropic(base_url="http://127.0.0.1:9", auth_token="x"), "env_1")
    return Dispatcher(settings, queue, sandboxes), sandboxes


def test_sandbox_warm_ups_never_exceed_max_concurrent_starts() -> None:
    async def scenario() -> int:
        dispatcher, sandboxes = _dispatcher(max_starts=3)
        names = await asyncio.gather(*(dispatcher._warm(f"s{i}") for i in range(20)))
        assert names == [f"w-s{i}" for i in range(20)]
        await dispatcher.queue.client.close()
        return sandboxes.most

    assert asyncio.run(scenario()) == 3


def test_the_same_webhook_id_is_accepted_once() -> None:
    async def scenario() -> list[bool]:
        dispatcher, _ = _dispatcher()
        first = dispatcher.notify("sesn_1", "msg_1")
        dispatcher._in_flight.clear()  # even once the session is no longer in flight
        again = dispatcher.notify("sesn_1", "msg_1")
        await dispatcher.queue.client.close()
        return [first, again]

    assert asyncio.run(scenario()) == [True, False]


def test_a_session_in_flight_is_not_dispatched_twice() -> None:
    async def scenario() -> list[bool]:
        dispatcher, _ = _dispatcher()
        results = [dispatcher.notify("sesn_1", f"msg_{i}") for i in range(20)]
        other = dispatcher.notify("sesn_2", "msg_other")
        await dispatcher.queue.client.close()
        return [*results, other]

    results = asyncio.run(scenario())
    assert results[0] is True
    assert not any(results[1:20])
    assert results[20] is True
