"""`WorkQueue`'s own rules over what the SDK returns: what is claimable, which items are a
session's live ones, which stop failures are fine, when a session counts as ended."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from anthropic import APIStatusError, AsyncAnthropic, NotFoundError

from orchestrator_app.dispatch import WorkQueue, is_claimable
from tests.orchestrator_app.test_dispatch import item


def work(
    work_id: str, session_id: str, state: str, *, acked: bool = False, kind: str = "session"
) -> Any:
    base = item(work_id, session_id)
    return base.model_copy(
        update={
            "state": state,
            "acknowledged_at": base.created_at if acked else None,
            "data": base.data.model_copy(update={"type": kind}),
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
