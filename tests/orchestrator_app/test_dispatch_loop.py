"""The dispatch machinery on a loop of its own: the web loop answers whatever dispatch does.

The app runs with its real clients pointed at dead loopback ports (nothing is contacted).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from orchestrator_app.app import create_app
from orchestrator_app.dispatch import Dispatcher, WorkQueue
from orchestrator_app.dispatch_loop import DispatchLoop
from orchestrator_app.settings import Settings
from tests.orchestrator_app.conftest import SignFn, run_started

TOKEN = "status-token-for-unit-tests-0123456789"
# Only so that a request the app never answers fails the test instead of hanging it.
NO_ANSWER_S = 10.0


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """The app under uvicorn in a thread, on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(NO_ANSWER_S)
        sock.close()


def test_a_webhook_is_answered_while_dispatch_work_blocks_its_loop(
    offline_settings: Settings, sign: SignFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked, release = threading.Event(), threading.Event()

    async def claimable(self: WorkQueue) -> tuple[list[str], bool]:
        blocked.set()
        release.wait()  # a dispatch step that never yields: its whole loop stands still
        return [], False

    monkeypatch.setattr(WorkQueue, "claimable", claimable)
    with serving(create_app(offline_settings)) as url, httpx.Client(timeout=NO_ANSWER_S) as http:
        try:
            body, headers = sign(run_started("sesn_first"))
            first = http.post(url + "/webhook", content=body, headers=headers)
            assert blocked.wait(NO_ANSWER_S), "the delivery started no drain"
            body, headers = sign(run_started("sesn_second"))
            second = http.post(url + "/webhook", content=body, headers=headers)
            health = http.get(url + "/health")
        finally:
            release.set()
    assert first.json() == second.json() == {"status": "accepted"}
    assert health.status_code == 200


def test_status_reads_the_dispatchers_state_in_the_dispatch_thread(
    offline_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers: list[str] = []
    real = Dispatcher.snapshot

    def snapshot(self: Dispatcher) -> dict[str, Any]:
        readers.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(Dispatcher, "snapshot", snapshot)
    settings = offline_settings.model_copy(update={"status_token": TOKEN})
    with TestClient(create_app(Settings.model_validate(settings.model_dump()))) as client:
        for path in ("/status", "/metrics"):
            response = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200
    assert readers == ["dispatch", "dispatch"]


def test_calls_handed_to_the_dispatch_loop_run_in_its_thread_in_order() -> None:
    dispatch = DispatchLoop()
    dispatch.start()
    seen: list[tuple[int, str]] = []

    async def last() -> str:
        return threading.current_thread().name

    async def scenario() -> str:
        for i in range(3):
            dispatch.call(lambda i=i: seen.append((i, threading.current_thread().name)))
        return await dispatch.run(last())

    try:
        assert asyncio.run(scenario()) == "dispatch"
    finally:
        dispatch.stop()
    assert seen == [(0, "dispatch"), (1, "dispatch"), (2, "dispatch")]
    assert dispatch.loop.is_closed()
