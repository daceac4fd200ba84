"""Dispatcher rules against an in-memory queue and sandboxes: the pipeline, claiming, stops.

The queue and sandboxes below replace only the network calls (poll/ack/stop/list and the
sandbox warm-up and start); every decision under test is the dispatcher's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from anthropic.types.beta.environments import BetaSelfHostedWork

from orchestrator_app.dispatch import DRAIN_SPACING_SECONDS, Dispatcher, WorkQueue, drain_rest
from orchestrator_app.errors import BlaxelError
from orchestrator_app.sandboxes import WorkerSandboxes
from orchestrator_app.settings import Settings
from orchestrator_app.workers import worker_process_name

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def secret(token: str | None) -> str:
    payload = {"sessions_token": token} if token else {"ingress_token": "x"}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def item(
    work_id: str,
    session_id: str,
    *,
    age: int = 0,
    token: str | None = "sst",
    environment_id: str = "env_1",
) -> Any:
    return BetaSelfHostedWork.model_validate(
        {
            "id": work_id,
            "type": "work",
            "environment_id": environment_id,
            "state": "queued",
            "created_at": (T0 + timedelta(seconds=age)).isoformat(),
            "data": {"type": "session", "id": session_id},
            "secret": secret(token) if token is not None else None,
            "acknowledged_at": None,
            "metadata": {},
        }
    )


class MemoryQueue(WorkQueue):
    """The queue's network calls, in memory: poll hands out each queued item once."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(AsyncAnthropic(base_url="http://127.0.0.1:9", auth_token="x"), "env_1")
        self.items = list(items)
        self.polled: set[str] = set()
        self.acked: list[str] = []
        self.stopped: list[str] = []

    async def claimable(self) -> tuple[list[str], bool]:
        live = [i for i in self.items if i.id not in self.acked and i.id not in self.stopped]
        return list(dict.fromkeys(i.data.id for i in live)), False

    async def poll(self, block_ms: int | None = None) -> Any:
        for i in self.items:
            if i.id not in self.polled and i.id not in self.stopped:
                self.polled.add(i.id)
                return i
        if block_ms is not None:
            await asyncio.sleep(block_ms / 1000)  # a long poll that found nothing
        return None

    async def ack(self, work: Any) -> None:
        self.acked.append(work.id)

    async def stop(self, work: Any) -> None:
        self.stopped.append(work.id)

    async def live_items(self, session_id: str) -> list[Any]:
        return []


class MemorySandboxes(WorkerSandboxes):
    """Warm-ups that take `delays[session]` seconds; starts recorded (or failing)."""

    def __init__(self, settings: Settings, delays: dict[str, float] | None = None) -> None:
        super().__init__(settings)
        self.delays = delays or {}
        self.running = 0
        self.most = 0
        self.started: list[tuple[str, str, dict[str, str]]] = []
        self.start_error: BlaxelError | None = None
        self.ready_at: dict[str, float] = {}

    async def ensure_ready(self, session_id: str) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(self.delays.get(session_id, 0.01))
        self.running -= 1
        self.ready_at[session_id] = asyncio.get_running_loop().time()
        return f"w-{session_id}"

    async def start_worker(self, sandbox_name: str, request: dict[str, Any]) -> bool:
        if self.start_error is not None:
            raise self.start_error
        self.started.append((sandbox_name, request["name"], request["env"]))
        return True


def make(
    items: list[Any], *, delays: dict[str, float] | None = None, **settings: Any
) -> tuple[Dispatcher, MemoryQueue, MemorySandboxes]:
    config = Settings.model_validate(
        {"environment_id": "env_1", "environment_key": "sk-ant-oat01-env-key", **settings}
    )
    queue = MemoryQueue(items)
    sandboxes = MemorySandboxes(config, delays)
    return Dispatcher(config, queue, sandboxes), queue, sandboxes


async def settle(dispatcher: Dispatcher) -> None:
    """Run one drain and wait until every session task it spawned has ended."""
    await dispatcher.drain()
    while dispatcher._tasks:
        await asyncio.gather(*(t for _, t in list(dispatcher._tasks.values())))
    await dispatcher.queue.client.close()


def test_sandbox_warm_ups_never_exceed_max_concurrent_starts() -> None:
    dispatcher, _, sandboxes = make(
        [item(f"work_{i}", f"s{i}") for i in range(20)], max_concurrent_starts=3
    )
    asyncio.run(settle(dispatcher))
    assert sandboxes.most == 3
    assert len(sandboxes.started) == 20


def test_a_sessions_worker_starts_before_warm_ups_queued_behind_it_begin() -> None:
    # With one slot per session across warm → claim → start, a burst is served in waves: the
    # first wave's workers start before the last sessions' sandboxes even begin warming (a
    # shared wait for warm-ups and starts ran every warm-up first: head-of-line blocking).
    dispatcher, _, sandboxes = make(
        [item(f"work_{i}", f"s{i}") for i in range(12)], max_concurrent_starts=3
    )
    events: list[str] = []
    warm, start = sandboxes.ensure_ready, sandboxes.start_worker

    async def traced_warm(session_id: str) -> str:
        events.append("warm")
        return await warm(session_id)

    async def traced_start(sandbox: str, request: dict[str, Any]) -> bool:
        events.append("start")
        return await start(sandbox, request)

    sandboxes.ensure_ready = traced_warm  # type: ignore[method-assign,assignment]
    sandboxes.start_worker = traced_start  # type: ignore[method-assign,assignment]
    asyncio.run(settle(dispatcher))
    assert events.count("start") == 12
    assert events.index("start") < len(events) - events[::-1].index("warm") - 1
    assert events[:3] == ["warm"] * 3 and "start" in events[:6]


def test_a_slow_warm_up_does_not_hold_back_the_other_sessions() -> None:
    dispatcher, _, sandboxes = make(
        [item("work_slow", "slow"), item("work_fast", "fast")], delays={"slow": 0.5, "fast": 0.01}
    )

    async def scenario() -> tuple[float, float]:
        started_at: dict[str, float] = {}
        original = sandboxes.start_worker

        async def timed(sandbox: str, request: dict[str, Any]) -> bool:
            started_at[sandbox] = asyncio.get_running_loop().time()
            return await original(sandbox, request)

        sandboxes.start_worker = timed  # type: ignore[method-assign,assignment]
        await settle(dispatcher)
        return started_at["w-fast"], started_at["w-slow"]

    fast, slow = asyncio.run(scenario())
    # The fast session's worker started long before the slow sandbox was ready.
    assert slow - fast > 0.3


def test_of_duplicate_items_for_one_session_the_newest_is_served_and_the_older_stopped() -> None:
    dispatcher, queue, sandboxes = make(
        [item("work_old", "s1", age=0), item("work_new", "s1", age=5)]
    )
    asyncio.run(settle(dispatcher))
    assert [name for _, name, _ in sandboxes.started] == [worker_process_name("work_new")]
    assert queue.acked == ["work_new"]
    assert queue.stopped == ["work_old"]


def test_a_transient_start_failure_leaves_the_claimed_item_unstopped() -> None:
    dispatcher, queue, sandboxes = make([item("work_1", "s1")])
    sandboxes.start_error = BlaxelError("start worker: 503", transient=True, status=503)
    asyncio.run(settle(dispatcher))
    assert queue.acked == ["work_1"]
    assert queue.stopped == []


def test_an_item_without_a_sessions_token_is_stopped_not_started() -> None:
    dispatcher, queue, sandboxes = make([item("work_1", "s1", token=None)])
    asyncio.run(settle(dispatcher))
    assert sandboxes.started == []
    assert queue.stopped == ["work_1"]


def test_the_environment_key_fallback_serves_such_an_item_only_when_enabled() -> None:
    dispatcher, queue, sandboxes = make(
        [item("work_1", "s1", token=None)], worker_environment_key_fallback=True
    )
    asyncio.run(settle(dispatcher))
    assert queue.stopped == []
    [(_, _, env)] = sandboxes.started
    assert env["ANTHROPIC_ENVIRONMENT_KEY"] == "sk-ant-oat01-env-key"


def test_a_worker_with_a_usable_secret_never_gets_the_environment_key() -> None:
    dispatcher, _, sandboxes = make([item("work_1", "s1")], worker_environment_key_fallback=True)
    asyncio.run(settle(dispatcher))
    [(_, _, env)] = sandboxes.started
    assert "sk-ant-oat01-env-key" not in env.values()


def test_a_session_being_dispatched_is_not_dispatched_twice() -> None:
    async def scenario() -> list[bool]:
        dispatcher, _, _ = make([item("work_1", "sesn_1")], delays={"sesn_1": 0.2})
        await dispatcher.drain()
        results = [dispatcher.notify("sesn_1") for _ in range(20)]
        other = dispatcher.notify("sesn_2")
        await dispatcher.shutdown()
        await dispatcher.queue.client.close()
        return [*results, other]

    results = asyncio.run(scenario())
    assert not any(results[:20])
    assert results[20] is True


class LateQueue(MemoryQueue):
    """The item of a delivery becomes listable only at the second listing."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.listings = 0

    async def claimable(self) -> tuple[list[str], bool]:
        self.listings += 1
        return ([], False) if self.listings == 1 else await super().claimable()


def test_an_empty_listing_right_after_a_delivery_is_retried_and_the_work_served() -> None:
    async def scenario() -> tuple[int, list[str]]:
        dispatcher, _, sandboxes = make([], empty_drain_retries=3, empty_drain_retry_seconds=0.01)
        queue = LateQueue([item("work_1", "s1")])
        dispatcher.queue = queue
        dispatcher.notify("s1")
        drainer = asyncio.create_task(dispatcher.run())
        while not sandboxes.started:
            await asyncio.sleep(0.01)
        drainer.cancel()
        await queue.client.close()
        return queue.listings, [name for _, name, _ in sandboxes.started]

    listings, started = asyncio.run(scenario())
    assert listings >= 2
    assert started == [worker_process_name("work_1")]


class LaggingPollQueue(MemoryQueue):
    """Lists its items at once, but a poll offers them only from the third poll on."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.polls = 0

    async def poll(self, block_ms: int | None = None) -> Any:
        self.polls += 1
        return None if self.polls <= 2 else await super().poll(block_ms)


def test_an_item_listed_before_a_poll_offers_it_is_polled_again_and_served() -> None:
    dispatcher, _, sandboxes = make([], empty_drain_retries=3, empty_drain_retry_seconds=0.01)
    dispatcher.queue = LaggingPollQueue([item("work_1", "s1")])
    asyncio.run(settle(dispatcher))
    assert [name for _, name, _ in sandboxes.started] == [worker_process_name("work_1")]


def test_re_listing_for_a_delivery_without_work_stops_after_the_bound() -> None:
    async def scenario() -> int:
        dispatcher, queue, _ = make([], empty_drain_retries=2, empty_drain_retry_seconds=0.01)
        dispatcher.notify("another-environments-session")
        drains = 0
        while dispatcher._hints or dispatcher._wake.is_set():
            await dispatcher._wake.wait()
            dispatcher._wake.clear()
            await dispatcher.drain()
            drains += 1
            await asyncio.sleep(0.05)
        await queue.client.close()
        return drains

    assert asyncio.run(scenario()) == 3  # the first listing and its 2 retries


def test_an_item_of_another_environment_gets_no_sandbox_no_claim_and_no_worker() -> None:
    async def scenario() -> tuple[list[str], MemoryQueue, MemorySandboxes]:
        dispatcher, queue, sandboxes = make([item("work_x", "s-other", environment_id="env_2")])
        # Reached through the poll, as work queued after the listing would be.
        await dispatcher._take(None)
        while dispatcher._tasks:
            await asyncio.gather(*(t for _, t in list(dispatcher._tasks.values())))
        await queue.client.close()
        return list(sandboxes.ready_at), queue, sandboxes

    warmed, queue, sandboxes = asyncio.run(scenario())
    assert warmed == []
    assert queue.acked == []
    assert queue.stopped == []
    assert sandboxes.started == []


def test_the_snapshot_shows_sessions_in_flight_and_the_workers_started() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        dispatcher, queue, _ = make([item("work_1", "s1")], delays={"s1": 0.1})
        await dispatcher.drain()
        during = dispatcher.snapshot()
        while dispatcher._tasks:
            await asyncio.gather(*(t for _, t in list(dispatcher._tasks.values())))
        after = dispatcher.snapshot()
        await queue.client.close()
        return during, after

    during, after = asyncio.run(scenario())
    assert during["in_flight"] == {"s1": "dispatch"}
    assert after["in_flight"] == {}
    assert after["workers"]["s1"]["work_id"] == "work_1"
    assert after["stats"]["started"] == 1


# --- metrics hooks at the dispatcher's decision points --------------------------------------


def test_a_started_worker_counts_a_drain_and_one_dispatch_latency_observation() -> None:
    dispatcher, _, _ = make([item("work_1", "s1")])
    asyncio.run(settle(dispatcher))
    totals = dispatcher.metrics.totals()
    assert totals["drains"] == {"total": 1.0}
    assert totals["dispatch_latency_seconds"]["count"] == 1.0
    assert "failures" not in totals


def test_a_failed_worker_start_is_counted_by_its_reason() -> None:
    dispatcher, _, sandboxes = make([item("work_1", "s1")])
    sandboxes.start_error = BlaxelError("start worker: 503", transient=True, status=503)
    asyncio.run(settle(dispatcher))
    assert dispatcher.metrics.totals()["failures"] == {"worker_start_failed": 1.0}
    assert dispatcher.metrics.totals()["dispatch_latency_seconds"]["count"] == 0.0


def test_a_sandbox_that_cannot_be_made_ready_is_counted_by_its_reason() -> None:
    dispatcher, queue, sandboxes = make([item("work_1", "s1")])

    async def not_ready(session_id: str) -> str:
        raise BlaxelError("create sandbox: 500", transient=True, status=500)

    sandboxes.ensure_ready = not_ready  # type: ignore[method-assign]
    asyncio.run(settle(dispatcher))
    assert queue.acked == []
    assert dispatcher.metrics.totals()["failures"] == {"sandbox_not_ready": 1.0}


def test_a_session_end_that_deletes_its_sandbox_counts_one_deletion() -> None:
    dispatcher, _, sandboxes = make([])
    deleted: list[str] = []

    async def owned(sandbox_name: str) -> bool:
        return True

    async def delete(sandbox_name: str) -> None:
        deleted.append(sandbox_name)

    sandboxes.owned = owned  # type: ignore[method-assign]
    sandboxes.delete = delete  # type: ignore[method-assign]

    async def scenario() -> None:
        await dispatcher._end("s1", "session.status_terminated")
        await dispatcher.queue.client.close()

    asyncio.run(scenario())
    assert len(deleted) == 1
    assert dispatcher.metrics.totals()["worker_sandboxes_deleted"] == {"total": 1.0}


def test_drain_requests_during_the_spacing_after_a_drain_make_one_more_drain() -> None:
    async def scenario() -> int:
        dispatcher, _, _ = make([])
        drainer = asyncio.create_task(dispatcher.run())
        dispatcher.request_drain()
        for _ in range(50):  # deliveries arriving while the first drain runs and just after
            await asyncio.sleep(0)
            dispatcher.request_drain()
        while dispatcher.stats.drains < 2:
            await asyncio.sleep(DRAIN_SPACING_SECONDS / 4)
        await asyncio.sleep(DRAIN_SPACING_SECONDS * 2)  # room for a third drain, if one came
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
        await dispatcher.queue.client.close()
        return dispatcher.stats.drains

    assert asyncio.run(scenario()) == 2


def test_drains_rest_four_times_as_long_as_they_took_and_short_ones_still_run_every_tenth() -> None:
    assert drain_rest(0.02) == pytest.approx(0.08)  # spacing: 0.1 s from start to start
    assert drain_rest(0.25) == pytest.approx(1.0)  # a long listing: at most a fifth of the time
    assert drain_rest(0.0) == pytest.approx(0.1)
