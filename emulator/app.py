"""One Starlette app serving both platforms, the Console stand-in and the test controls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.anthropic import AnthropicBackend, anthropic_routes, console_routes
from emulator.blaxel import BlaxelBackend, blaxel_routes
from emulator.blaxel.exceptions import fault_body as blaxel_fault_body
from emulator.config import BLAXEL_PREFIX, CONSOLE_PREFIX, CONTROL_PREFIX, EmulatorConfig
from emulator.faults import FaultInjector, FaultRule


class Emulator:
    """The emulator's whole state: one backend per platform plus the fault injector."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = FaultInjector()
        self.blaxel = BlaxelBackend(config)
        self.anthropic = AnthropicBackend(config)

    def reset(self) -> None:
        self.faults.reset()
        self.anthropic.reset()
        self.blaxel.reset()


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
        # As the platform does: a 4xx says "don't retry" (the Anthropic SDK would retry a 409).
        headers = {"x-should-retry": "false"} if rule.status < 500 else {}
        response = JSONResponse(fault_body(path, rule.status), rule.status, headers=headers)
        await response(scope, receive, send)


def fault_body(path: str, status: int) -> dict[str, object]:
    """An injected failure in the error shape of the platform that owns `path`."""
    if path.startswith(BLAXEL_PREFIX):
        return blaxel_fault_body(status)
    return {"type": "error", "error": {"type": "api_error", "message": "injected fault"}}


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
        emulator.anthropic.clock.advance(seconds)
        emulator.blaxel.advance_clock(seconds)
        return JSONResponse({"advanced": seconds})

    return [
        Route("/reset", reset, methods=["POST"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", fault_stats, methods=["GET"]),
        Route("/clock", advance_clock, methods=["POST"]),
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
    app = Starlette(routes=routes, lifespan=lifespan)
    return FaultMiddleware(app, emulator)
