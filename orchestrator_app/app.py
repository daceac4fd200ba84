"""The Starlette app: shared clients in lifespan state, errors mapped in one place, routes as data.

`create_app(settings)` builds the app; without settings the lifespan reads them from the
environment at startup (never at import). The lifespan configures the Blaxel SDK's client,
opens one `AsyncAnthropic` client (authenticated by the environment key only), and runs the
drainer, the recovery poll and the janitor as background tasks when dispatch is possible, and
in poll mode (`ORCH_DISPATCH_MODE=poll`) the long-poll loop that replaces the webhook.

Those tasks and the SDK clients they use live on the dispatch loop, in its own thread
(`dispatch_loop`), so that webhook answers never wait behind dispatch work; the web loop
reaches them only through `DispatchLoop.call` and `DispatchLoop.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from anthropic import AsyncAnthropic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator_app import health, status, webhooks
from orchestrator_app.dispatch import Dispatcher, WorkQueue
from orchestrator_app.dispatch_loop import DispatchLoop
from orchestrator_app.errors import (
    MalformedWebhook,
    NotConfigured,
    PayloadTooLarge,
    WebhookRejected,
)
from orchestrator_app.janitor import janitor_forever
from orchestrator_app.logging import register_secrets
from orchestrator_app.metrics import Metrics
from orchestrator_app.recovery import recover_forever
from orchestrator_app.sandboxes import WorkerSandboxes, close_blaxel, configure_blaxel
from orchestrator_app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the routes share, held in lifespan state (`request.state.services`)."""

    settings: Settings
    anthropic: AsyncAnthropic
    sandboxes: WorkerSandboxes
    dispatcher: Dispatcher
    metrics: Metrics
    # Where the dispatcher, its tasks and the SDK clients run (never the web loop).
    dispatch: DispatchLoop = field(default_factory=DispatchLoop)
    # Webhook ids already accepted; read and written on the web loop only.
    deliveries: webhooks.SeenDeliveries = field(default_factory=webhooks.SeenDeliveries)
    # Why dispatch is off (missing settings); empty when the background tasks run.
    not_dispatching: list[str] = field(default_factory=list)
    # Puts the Blaxel SDK's global configuration back as it was before the app started.
    restore_blaxel: Callable[[], None] = lambda: None


def build_services(settings: Settings) -> Services:
    """The shared clients, built from settings (no network I/O)."""
    restore_blaxel = configure_blaxel(settings)
    key = settings.environment_key.get_secret_value() if settings.environment_key else ""
    # An explicit (possibly empty) bearer: the SDK then never falls back to ANTHROPIC_API_KEY.
    client = AsyncAnthropic(base_url=settings.anthropic_url, auth_token=key, timeout=30.0)
    sandboxes = WorkerSandboxes(settings)
    dispatcher = Dispatcher(settings, WorkQueue(client, settings.environment_id or ""), sandboxes)
    blocking = [p for p in settings.missing() if "signing secret" not in p]
    # One registry per app, shared with the dispatcher's hooks.
    return Services(
        settings,
        client,
        sandboxes,
        dispatcher,
        dispatcher.metrics,
        not_dispatching=blocking,
        restore_blaxel=restore_blaxel,
    )


async def start_background(services: Services) -> list[asyncio.Task[None]]:
    """The drainer, janitor, recovery (and in poll mode the work poll), on the running loop."""
    if services.not_dispatching:
        return []
    settings, dispatcher = services.settings, services.dispatcher
    tasks = [
        asyncio.create_task(dispatcher.run(), name="drainer"),
        asyncio.create_task(
            janitor_forever(dispatcher, settings.janitor_interval_seconds), name="janitor"
        ),
        asyncio.create_task(
            recover_forever(dispatcher, settings.recovery_poll_seconds), name="recovery"
        ),
    ]
    if settings.dispatch_mode == "poll":
        tasks.append(asyncio.create_task(dispatcher.poll_forever(), name="work-poll"))
    return tasks


async def stop_background(services: Services, tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the background and session tasks and close the SDK clients of the running loop."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await services.dispatcher.shutdown()
    await services.anthropic.close()
    await close_blaxel()


@contextlib.asynccontextmanager
async def _lifespan(
    app: Starlette, settings_factory: Callable[[], Settings]
) -> AsyncIterator[dict[str, Services]]:
    settings = settings_factory()
    register_secrets(settings.secret_values())
    services = build_services(settings)
    if services.not_dispatching:
        log.warning("dispatch disabled", extra={"problems": services.not_dispatching})
    dispatch = services.dispatch
    dispatch.start()
    try:
        tasks = await dispatch.run(start_background(services))
        log.info(
            "orchestrator started",
            extra={
                "environment_id": settings.environment_id,
                "dispatch_mode": settings.dispatch_mode,
            },
        )
        try:
            yield {"services": services}
        finally:
            await dispatch.run(stop_background(services, tasks))
    finally:
        dispatch.stop()
        services.restore_blaxel()
        log.info("orchestrator stopped")


# ---------------------------------------------------------------- errors, in one place


async def _rejected(request: Request, exc: Exception) -> Response:
    log.warning("webhook rejected", extra={"reason": str(exc)})
    return JSONResponse({"error": "unauthorized", "message": str(exc)}, status_code=401)


async def _malformed(request: Request, exc: Exception) -> Response:
    log.warning("webhook malformed", extra={"reason": str(exc)})
    return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)


async def _too_large(request: Request, exc: Exception) -> Response:
    log.warning("webhook too large", extra={"reason": str(exc)})
    return JSONResponse({"error": "payload_too_large", "message": str(exc)}, status_code=413)


async def _not_configured(request: Request, exc: Exception) -> Response:
    log.warning("not configured", extra={"reason": str(exc)})
    return JSONResponse({"error": "not_configured", "message": str(exc)}, status_code=503)


async def _unauthorized(request: Request, exc: Exception) -> Response:
    # Nothing about why: no hint whether a token is configured, or close.
    return JSONResponse(
        {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)


exception_handlers = {
    WebhookRejected: _rejected,
    MalformedWebhook: _malformed,
    PayloadTooLarge: _too_large,
    NotConfigured: _not_configured,
    status.Unauthorized: _unauthorized,
    Exception: _unexpected,
}

routes = [
    Route("/webhook", webhooks.receive, methods=["POST"]),
    Route("/health", health.health, methods=["GET"]),
    Route("/ready", health.ready, methods=["GET"]),
    Route("/status", status.status, methods=["GET"]),
    Route("/metrics", status.metrics, methods=["GET"]),
]


def create_app(settings: Settings | None = None) -> Starlette:
    """The orchestrator app; settings are read from the environment at startup when not given."""

    def settings_factory() -> Settings:
        return settings if settings is not None else Settings.from_env()

    return Starlette(
        routes=routes,
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        lifespan=lambda app: _lifespan(app, settings_factory),
    )
