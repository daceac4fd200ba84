"""A loopback server with only the Blaxel routes mounted at /blaxel, and the SDK pointed at it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from emulator.app import unexpected_error_handler
from emulator.blaxel import BlaxelBackend, blaxel_routes
from emulator.config import BLAXEL_PREFIX, EmulatorConfig, fast_timing

API_KEY = "bl-test-key"
WORKSPACE = "test-ws"
# The SDK reads its credentials once, from the environment, when it is first imported.
os.environ["BL_API_KEY"] = API_KEY
os.environ["BL_WORKSPACE"] = WORKSPACE
os.environ["BL_REGION"] = "us-pdx-1"  # else the SDK warns (FutureWarning) on every create

from blaxel.core.authentication import auth  # noqa: E402
from blaxel.core.client.client import client  # noqa: E402
from blaxel.core.common.settings import settings  # noqa: E402


class BlaxelServer:
    """uvicorn serving the Blaxel routes on 127.0.0.1, in a thread."""

    def __init__(self, data_dir: Path) -> None:
        import socket

        self._sock = socket.socket()
        # Accepted sockets inherit it: without it, h11's separate header and body writes meet
        # Nagle and delayed ACKs, and every keep-alive request takes 40 ms.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        port = self._sock.getsockname()[1]
        self.config = EmulatorConfig(
            public_base_url=f"http://127.0.0.1:{port}",
            data_dir=data_dir,
            blaxel_api_key=API_KEY,
            blaxel_workspace=WORKSPACE,
            timing=fast_timing(),
        )
        self.backend = BlaxelBackend(self.config)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.backend.start()
            try:
                yield
            finally:
                await self.backend.stop()

        self.unexpected_errors: list[str] = []
        app = Starlette(
            routes=[Mount(BLAXEL_PREFIX, routes=blaxel_routes(self.backend))],
            lifespan=lifespan,
            exception_handlers={Exception: unexpected_error_handler(self.unexpected_errors)},
        )
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> BlaxelServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def point_sdk_at(base_url: str) -> None:
    """What a user of the emulator does: the control plane URL and the credentials."""
    client.with_base_url(base_url)
    settings.auth = auth(settings.env, settings.base_url)
    client.with_auth(settings.auth)


@pytest.fixture(scope="session")
def blaxel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlaxelServer]:
    server = BlaxelServer(tmp_path_factory.mktemp("blaxel")).start()
    point_sdk_at(server.config.blaxel_base_url)
    yield server
    pids = server.backend.running_pids()
    server.stop()
    assert not [pid for pid in pids if _alive(pid)], "server stop left sandbox processes alive"


@pytest.fixture
async def backend(
    blaxel_server: BlaxelServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BlaxelBackend]:
    """The emulator's Blaxel state, empty at the start of each test; its processes die after.

    The SDK leaves HTTP clients open (one per SandboxInstance, one more per `process.get`): the
    test closes every client opened during it, so that an unclosed-socket warning (an error
    here) would point at the emulator, not at the SDK. That includes the SDK's global client:
    when a later test on this worker uses the SDK from another event loop (an orchestrator's
    dispatch loop), the SDK drops the client of this loop without closing it
    (blaxel/core/client/client.py:176), and its keep-alive socket would warn whenever the
    garbage collector next ran, in whatever test that was.
    """
    opened: list[httpx.AsyncClient] = []
    init = httpx.AsyncClient.__init__

    def tracked_init(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", tracked_init)
    blaxel_server.backend.reset()
    point_sdk_at(blaxel_server.config.blaxel_base_url)
    yield blaxel_server.backend
    monkeypatch.undo()
    for http in opened:
        await http.aclose()
    if client._async_client in opened:  # unbound: the next test's first call builds a new one
        client._async_client, client._async_client_loop = None, None
    pids = blaxel_server.backend.running_pids()
    blaxel_server.backend.reset()
    assert not [pid for pid in pids if _alive(pid)], "reset left sandbox processes alive"
    errors, blaxel_server.unexpected_errors[:] = list(blaxel_server.unexpected_errors), []
    assert not errors, f"the emulator raised unexpected exceptions: {errors}"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """One event loop for the whole session: the SDK's global client is bound to its loop."""
    return "asyncio"


async def until_status(name: str, status: str, limit_s: float = 5.0) -> Any:
    """The sandbox read through the SDK once it shows `status` (deploys and deletes take time)."""
    import asyncio

    from blaxel.core import SandboxInstance

    deadline = time.monotonic() + limit_s
    while True:
        sandbox = await SandboxInstance.get(name)
        if sandbox.status == status or time.monotonic() > deadline:
            return sandbox
        await asyncio.sleep(0.02)
