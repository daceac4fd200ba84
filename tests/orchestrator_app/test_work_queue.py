"""`WorkQueue`'s own rules over what the SDK returns: what is claimable, which items are a
session's live ones, which stop failures are fine, when a session counts as ended."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from anthropic import APIStatusError, AsyncAnthropic, NotFoundError

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from orchestrator_app.dispatch import (
    PAGE_LIMIT,
    ListedWork,
    WorkQueue,
    is_claimable,
    listed_page,
    listed_work,
)
from tests.orchestrator_app.emulated import make_stack


def work(
    work_id: str, session_id: str, state: str, *, acked: bool = False, kind: str = "session"
) -> ListedWork:
    """A listed item as the API's JSON gives it (`BetaSelfHostedWork`'s fields)."""
    return listed_work(
        {
            "id": work_id,
            "type": "work",
            "state": state,
            "acknowledged_at": "2026-12-01T00:00:01Z" if acked else None,
            "created_at": "2026-12-01T00:00:00Z",
            "environment_id": "env_1",
            "data": {"type": kind, "id": session_id},
            "metadata": {},
        }
    )


def queue_of(items: list[Any]) -> WorkQueue:
    queue = WorkQueue(AsyncAnthropic(base_url="http://127.0.0.1:9", auth_token="x"), "env_1")

    async def listed() -> list[Any]:
        return items

    queue._items = listed  # type: ignore[method-assign]
    return queue


def status_error(code: int) -> APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/x")
    answer = httpx.Response(code, request=request)
    return APIStatusError("refused", response=answer, body=None)  # type: ignore[arg-type]


def test_only_work_nobody_acknowledged_is_claimable() -> None:
    assert is_claimable(work("w1", "s", "queued"))
    assert is_claimable(work("w2", "s", "starting"))  # polled, lease not yet acked
    assert not is_claimable(work("w3", "s", "starting", acked=True))  # someone runs it
    assert not is_claimable(work("w4", "s", "active", acked=True))


def test_a_sessions_live_items_are_its_own_session_items_still_queued_or_leased() -> None:
    items = [
        work("mine", "s1", "queued"),
        work("running", "s1", "active", acked=True),
        work("done", "s1", "stopped", acked=True),
        work("other", "s2", "queued"),
        work("check", "s1", "queued", kind="healthcheck"),
    ]
    live = asyncio.run(queue_of(items).live_items("s1"))
    assert [i.id for i in live] == ["mine", "running"]


def test_a_list_page_reads_each_items_fields_and_the_next_cursor() -> None:
    body = {
        "data": [
            {"id": "w1", "state": "queued", "data": {"type": "session", "id": "s1"}},
            {"id": "w2", "state": "active", "acknowledged_at": "t", "data": {"type": "health"}},
        ],
        "next_page": "cursor-2",
    }
    items, cursor = listed_page(body)
    assert items == [
        ListedWork("w1", "queued", None, "session", "s1"),
        ListedWork("w2", "active", "t", "health", None),
    ]
    assert cursor == "cursor-2"
    assert listed_page({"data": [], "next_page": None}) == ([], None)
    with pytest.raises(ValueError, match="not a JSON object"):
        listed_page(["not", "a", "page"])


def test_stopping_already_stopped_work_is_fine_and_any_other_refusal_raises() -> None:
    queue = queue_of([])
    answers = iter([status_error(409), status_error(500)])

    async def stop(*_: Any, **__: Any) -> None:
        raise next(answers)

    queue.client.beta.environments.work.stop = stop  # type: ignore[method-assign,assignment]
    asyncio.run(queue.stop(work("w", "s", "active")))  # 409: already stopped
    with pytest.raises(APIStatusError):
        asyncio.run(queue.stop(work("w", "s", "active")))


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (SimpleNamespace(status="running", archived_at=None), "running"),
        (SimpleNamespace(status="idle", archived_at=None), "idle"),
        (SimpleNamespace(status="terminated", archived_at=None), "ended"),
        (SimpleNamespace(status="idle", archived_at="2026-12-01T00:00:00Z"), "ended"),
        (None, "ended"),  # gone
    ],
)
def test_a_session_counts_as_ended_when_terminated_archived_or_gone(
    session: Any, expected: str
) -> None:
    queue = queue_of([])

    async def retrieve(_id: str) -> Any:
        if session is None:
            request = httpx.Request("GET", "http://127.0.0.1:9/v1/sessions/s")
            gone = httpx.Response(404, request=request)
            raise NotFoundError("gone", response=gone, body=None)  # type: ignore[arg-type]
        return session

    queue.client.beta.sessions.retrieve = retrieve  # type: ignore[method-assign,assignment]
    assert asyncio.run(queue.session_status("s")) == expected


def test_the_whole_queue_is_listed_page_by_page_through_the_sdk(tmp_path: Path) -> None:
    """More sessions than the API's largest page: the listing follows `next_page` to the end
    (against the emulator, through the SDK, with the environment key)."""
    sessions = PAGE_LIMIT + 5
    with EmulatorServer(timing=fast_timing()) as server:
        stack = make_stack(server, "unused-worker-image", tmp_path, "paged-listing")
        try:
            created = [stack.create_session() for _ in range(sessions)]

            async def listed() -> tuple[list[str], bool]:
                client = AsyncAnthropic(
                    base_url=server.config.anthropic_base_url, auth_token=stack.environment_key
                )
                async with client:
                    return await WorkQueue(client, stack.environment_id).claimable()

            claimable, others = asyncio.run(listed())
        finally:
            stack.client.close()
    assert sorted(claimable) == sorted(created)
    assert not others
