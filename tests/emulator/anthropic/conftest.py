"""A loopback server with only the Anthropic routes (plus a webhook receiver), shared by the
module's tests and reset before each; clients of the official SDK pointed at it."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from emulator.anthropic import AnthropicBackend, anthropic_routes, console_routes
from emulator.app import unexpected_error_handler
from emulator.config import EmulatorConfig, fast_timing

LOOPBACK = "127.0.0.1"
UNEXPECTED_ERRORS: list[str] = []  # exceptions no route mapped (emulator bugs), per test


@dataclass
class Receiver:
    """Records webhook requests; answers `statuses` in turn, then 200."""

    requests: list[tuple[dict[str, str], str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@dataclass
class AnthropicServer:
    config: EmulatorConfig
    backend: AnthropicBackend
    receivers: dict[str, Receiver]
    http: httpx.Client  # for the Console, which has no SDK
    sdk_http: (
        anthropic.DefaultHttpxClient
    )  # one connection pool (and TLS context) for all SDK clients

    @property
    def base_url(self) -> str:
        return self.config.anthropic_base_url

    def receiver_url(self, name: str) -> str:
        self.receivers.setdefault(name, Receiver())
        return f"{self.config.public_base_url}/_test/receiver/{name}"

    def console(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The Console has no SDK call: plain HTTP, as a browser session would send."""
        return self.http.request(method, self.config.console_url + path, **kwargs)

    def environment_key(self, environment_id: str) -> str:
        response = self.console("POST", f"/environments/{environment_id}/keys")
        response.raise_for_status()
        return str(response.json()["key"])


def _receiver_route(receivers: dict[str, Receiver]) -> Route:
    async def receive(request: Request) -> Response:
        receiver = receivers.setdefault(request.path_params["name"], Receiver())
        try:
            body = (await request.body()).decode()
        except ClientDisconnect:
            # The sender went away mid-request: a reset between tests cancels the deliveries
            # still in flight. Not the emulator's error, and nothing was received.
            return Response(status_code=499)
        receiver.requests.append((dict(request.headers), body))
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        return JSONResponse({"ok": status < 300}, status_code=status)

    return Route("/_test/receiver/{name}", receive, methods=["POST"])


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[AnthropicServer]:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="anthropic-emulator-") as tmp:
        # Items pollable at once here; test_contract.py pins the delay on its own.
        timing = fast_timing()
        timing.update(work_pollable_delay_s=0)
        config = EmulatorConfig(
            public_base_url=f"http://{LOOPBACK}:{port}", data_dir=Path(tmp), timing=timing
        )
        backend = AnthropicBackend(config)
        receivers: dict[str, Receiver] = {}

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await backend.start()
            yield
            await backend.stop()

        app = Starlette(
            routes=[
                Mount("/_console", routes=console_routes(backend)),
                _receiver_route(receivers),
                *anthropic_routes(backend),
            ],
            lifespan=lifespan,
            exception_handlers={Exception: unexpected_error_handler(UNEXPECTED_ERRORS)},
        )
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        with (
            httpx.Client(trust_env=False) as http,
            anthropic.DefaultHttpxClient(trust_env=False) as sdk_http,
        ):
            yield AnthropicServer(config, backend, receivers, http, sdk_http)
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def emulator(
    anthropic_server: AnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnthropicServer]:
    """The shared server, emptied, with quick webhook retries; an emulator bug fails the test."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    anthropic_server.backend.reset()
    anthropic_server.backend.webhook_retry_delays = (0.05, 0.1, 0.2)
    anthropic_server.receivers.clear()
    UNEXPECTED_ERRORS.clear()
    yield anthropic_server
    errors = list(UNEXPECTED_ERRORS)
    UNEXPECTED_ERRORS.clear()
    assert not errors, f"the emulator raised unexpected exceptions: {errors}"


@pytest.fixture
def client(emulator: AnthropicServer) -> anthropic.Anthropic:
    """The operator's client: the API key, no retries (so every error surfaces as is)."""
    return anthropic.Anthropic(
        api_key=emulator.config.anthropic_api_key,
        base_url=emulator.base_url,
        max_retries=0,
        http_client=emulator.sdk_http,
    )


@pytest.fixture
def bearer_client(emulator: AnthropicServer) -> Callable[[str], anthropic.Anthropic]:
    """A client that sends `token` as `Authorization: Bearer` (environment keys, sessions tokens)."""

    def make(token: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            auth_token=token,
            api_key=None,
            base_url=emulator.base_url,
            max_retries=0,
            http_client=emulator.sdk_http,
        )

    return make
