"""One Starlette app serving both platforms, the Console stand-in and the test controls."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.anthropic import AnthropicBackend, anthropic_routes, console_routes
from emulator.anthropic.exceptions import AnthropicAPIError
from emulator.blaxel import BlaxelBackend, blaxel_routes
from emulator.blaxel.exceptions import BlaxelError
from emulator.blaxel.exceptions import fault_body as blaxel_fault_body
from emulator.blaxel.sandbox_ops import LOCAL_API_PREFIX
from emulator.config import BLAXEL_PREFIX, CONSOLE_PREFIX, CONTROL_PREFIX, EmulatorConfig
from emulator.faults import FaultInjector, FaultRule

logger = logging.getLogger(__name__)


class Emulator:
    """The emulator's whole state: one backend per platform plus the fault injector."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = FaultInjector()
        self.blaxel = BlaxelBackend(config)
        self.anthropic = AnthropicBackend(config)

        # Exceptions no platform route mapped (a bug here, answered as the platform's 500):
        # test fixtures assert this stays empty.
        self.unexpected_errors: list[str] = []

    def reset(self) -> None:
        self.faults.reset()
        self.anthropic.reset()
        self.blaxel.reset()
        self.unexpected_errors.clear()

    def advance_clock(self, seconds: float) -> None:
        self.anthropic.clock.advance(seconds)
        self.blaxel.advance_clock(seconds)

    def reset_clock(self) -> None:
        """Both platforms back to real time."""
        self.anthropic.clock.reset()
        self.blaxel.clock_offset = 0.0


class LocalSandboxApi:
    """A booting sandbox's own API, reached without credentials as 127.0.0.1:8080 is inside a
    Blaxel sandbox (emulator/blaxel/boot.py): `LOCAL_API_PREFIX/{token}/…` goes on to that
    sandbox's routes with the workspace's key, through the fault injector like any call."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app, self.emulator = app, emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        prefix = LOCAL_API_PREFIX + "/"
        if scope["type"] != "http" or not path.startswith(prefix):
            await self.app(scope, receive, send)
            return
        token, _, rest = path.removeprefix(prefix).partition("/")
        sandbox = self.emulator.blaxel.sandbox_by_local_token(token)
        if sandbox is None:
            await JSONResponse({"error": "no such sandbox"}, status_code=404)(scope, receive, send)
            return
        config = self.emulator.config
        inner = f"{BLAXEL_PREFIX}/sandboxes/{sandbox.name}/{rest}"
        dropped = (b"authorization", b"x-blaxel-authorization", b"x-blaxel-workspace")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
        headers += [
            (b"x-blaxel-authorization", f"Bearer {config.blaxel_api_key}".encode()),
            (b"x-blaxel-workspace", config.blaxel_workspace.encode()),
        ]
        inner_scope = {**scope, "path": inner, "raw_path": inner.encode(), "headers": headers}
        await self.app(inner_scope, receive, send)


class FaultMiddleware:
    """Answers a request with an injected fault before it reaches the platform's routes."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        rule = self.emulator.faults.take(scope["method"], path)
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule.action == "drop_answer":
            await self._drop_answer(scope, receive, send)
            return
        # As the platform does: a 4xx says "don't retry" (the Anthropic SDK would retry a 409).
        headers = {"x-should-retry": "false"} if rule.status < 500 else {}
        response = JSONResponse(fault_body(path, rule.status), rule.status, headers=headers)
        await response(scope, receive, send)

    async def _drop_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request (its state change happens), then cut the connection mid-answer."""

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        # uvicorn closes a connection whose app fails after the response started: the client
        # sees the connection drop with no usable answer.
        raise DroppedAnswer(f"{scope['method']} {scope.get('path', '')}")


class DroppedAnswer(Exception):
    """Raised on purpose by a `drop_answer` fault to make the server close the connection."""


def unexpected_error_handler(
    errors: list[str],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Starlette's handler for exceptions no route mapped: a bug in the emulator.

    Recorded in `errors` (EmulatorServer.stop and the emulator test fixtures fail on any), and
    answered in the owning platform's error shape so the client's parser still works.
    """

    async def unexpected(request: Request, exc: Exception) -> Response:
        errors.append(
            f"{request.method} {request.url.path}: "
            + "".join(traceback.format_exception_only(type(exc), exc)).strip()
        )
        logger.error("emulator: unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(fault_body(request.url.path, 500, "emulator bug"), 500)

    return unexpected


def fault_body(path: str, status: int, message: str = "injected fault") -> dict[str, object]:
    """A failure in the error shape of the platform that owns `path`."""
    if path.startswith(BLAXEL_PREFIX):
        return blaxel_fault_body(status, message)
    return {"type": "error", "error": {"type": "api_error", "message": message}}


def _control_routes(emulator: Emulator) -> list[Route]:
    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def add_fault(request: Request) -> Response:
        data = await request.json()
        try:
            rule = emulator.faults.add(FaultRule(**data))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad fault rule: {exc}"}, status_code=400)
        return JSONResponse({"method": rule.method, "path_pattern": rule.path_pattern})

    async def fault_stats(request: Request) -> Response:
        return JSONResponse({"injected": emulator.faults.injected})

    async def advance_clock(request: Request) -> Response:
        """Move both platforms' clocks forward (TTLs, leases), e.g. {"seconds": 3600}."""
        seconds = float((await request.json())["seconds"])
        emulator.advance_clock(seconds)
        return JSONResponse({"advanced": seconds})

    async def reset_clock(request: Request) -> Response:
        """Both clocks back to real time."""
        emulator.reset_clock()
        return JSONResponse({"reset": True})

    async def set_timing(request: Request) -> Response:
        """Change platform latencies, e.g. {"sandbox_deploy_s": 0.05}; answers them all."""
        try:
            emulator.config.timing.update(**(await request.json()))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad timing: {exc}"}, status_code=400)
        return JSONResponse(dataclasses.asdict(emulator.config.timing))

    async def sandbox_fault(request: Request) -> Response:
        """Do to a sandbox what Blaxel may: `fail` it, `recreate` it from its image, `standby`."""
        name, action = request.path_params["name"], request.path_params["action"]
        actions = {
            "fail": emulator.blaxel.fail_sandbox,
            "recreate": emulator.blaxel.recreate_sandbox,
            "standby": emulator.blaxel.standby_sandbox,
        }
        if action not in actions:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
        try:
            sandbox = actions[action](name)
        except BlaxelError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        return JSONResponse({"name": sandbox.name, "status": sandbox.status})

    async def process_crash(request: Request) -> Response:
        """SIGKILL a sandbox process as an OOM kill or a segfault would: a failure, not a kill.

        Answers once its end is recorded: `restartOnFailure` has counted a restart and started
        the next run, or the process reads `failed` for good.
        """
        name, identifier = request.path_params["name"], request.path_params["process"]
        try:
            killed = await run_in_threadpool(emulator.blaxel.crash_process, name, identifier)
            process = emulator.blaxel.get_process_record(name, identifier)
        except BlaxelError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        view = process.to_response()
        fields = ("name", "pid", "status", "exitCode", "restartCount", "maxRestarts")
        return JSONResponse({"killedPid": killed, **{key: view[key] for key in fields}})

    async def work_secret_mode(request: Request) -> Response:
        """What the environment's polled secrets carry: {"mode": "full"|"no_sessions_token"|"absent"}."""
        mode = (await request.json()).get("mode")
        try:
            emulator.anthropic.set_work_secret_mode(request.path_params["id"], str(mode))
        except AnthropicAPIError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        return JSONResponse({"mode": mode})

    async def unexpected_errors(request: Request) -> Response:
        return JSONResponse({"errors": list(emulator.unexpected_errors)})

    return [
        Route("/reset", reset, methods=["POST"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", fault_stats, methods=["GET"]),
        Route("/clock", advance_clock, methods=["POST"]),
        Route("/clock", reset_clock, methods=["DELETE"]),
        Route("/timing", set_timing, methods=["POST"]),
        Route("/blaxel/sandboxes/{name}/{action}", sandbox_fault, methods=["POST"]),
        Route(
            "/blaxel/sandboxes/{name}/processes/{process}/crash", process_crash, methods=["POST"]
        ),
        Route("/anthropic/environments/{id}/work_secret", work_secret_mode, methods=["POST"]),
        Route("/errors", unexpected_errors, methods=["GET"]),
    ]


def create_app(emulator: Emulator) -> ASGIApp:
    """The ASGI app: Anthropic at /v1, Console at /_console, Blaxel at /blaxel, controls at /_emulator."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await emulator.blaxel.start()
        await emulator.anthropic.start()
        try:
            yield
        finally:
            await emulator.anthropic.stop()
            await emulator.blaxel.stop()

    routes = [
        Mount(CONTROL_PREFIX, routes=_control_routes(emulator)),
        Mount(CONSOLE_PREFIX, routes=console_routes(emulator.anthropic)),
        Mount(BLAXEL_PREFIX, routes=blaxel_routes(emulator.blaxel)),
        *anthropic_routes(emulator.anthropic),
    ]

    handler = unexpected_error_handler(emulator.unexpected_errors)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: handler})
    return LocalSandboxApi(FaultMiddleware(app, emulator), emulator)
