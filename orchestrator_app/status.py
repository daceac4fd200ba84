"""`GET /status` (JSON) and `GET /metrics` (Prometheus text), both behind the status token.

They sit behind the public preview URL, so each needs `Authorization: Bearer <ORCH_STATUS_TOKEN>`
(compared in constant time); without it, or when no token is configured, the answer is a bare
401 that reveals nothing. `/ready` uses `authorized()` to decide whether to show its details.
"""

from __future__ import annotations

import hmac
from collections import Counter
from typing import Any

import anthropic
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator_app.dispatch import Dispatcher
from orchestrator_app.errors import OrchestratorError
from orchestrator_app.metrics import CONTENT_TYPE, WORKER_STATES
from orchestrator_app.settings import Settings

QUEUE_STATS_TIMEOUT_SECONDS = 5.0


class Unauthorized(OrchestratorError):
    """The request carries no valid status token (401, nothing else said)."""


def authorized(request: Request, settings: Settings) -> bool:
    """True when the request's bearer token is the configured status token."""
    if settings.status_token is None:
        return False
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    expected = settings.status_token.get_secret_value().encode()
    return hmac.compare_digest(presented.strip().encode(), expected)


def require_token(request: Request) -> None:
    if not authorized(request, request.state.services.settings):
        raise Unauthorized("status token required")


def dispatcher_snapshot(dispatcher: Dispatcher) -> dict[str, Any]:
    """Sessions in flight and the workers this process tracks, with their state (pure read of
    the public `Dispatcher.snapshot()`).

    A session with a dispatch task is `starting`, with an end task `ending`; a worker this
    process started (or found running) and no task in flight is `running` (its process may
    since have exited into standby between turns: the janitor reconciles that).
    """
    view = dispatcher.snapshot()
    in_flight: dict[str, str] = view["in_flight"]
    tracked: dict[str, dict[str, Any]] = view["workers"]
    states = {"dispatch": "starting", "end": "ending"}
    workers = [
        {
            "session_id": session_id,
            "sandbox": record["sandbox"] if record else None,
            "work_id": (record["work_id"] or None) if record else None,
            "state": states.get(in_flight.get(session_id, ""), "running"),
        }
        for session_id in sorted(set(tracked) | set(in_flight))
        for record in [tracked.get(session_id)]
    ]
    by_state = Counter(w["state"] for w in workers)
    return {
        "sessions_in_flight": sorted(in_flight),
        "polled_unclaimed": view["polled_unclaimed"],
        "workers": workers,
        "workers_by_state": {state: by_state.get(state, 0) for state in WORKER_STATES},
    }


async def queue_stats(services: Any) -> dict[str, Any]:
    """This environment's queue stats from the API, or {"error": …} when it cannot be read."""
    settings: Settings = services.settings
    if not (settings.environment_id and settings.environment_key):
        return {"error": "environment id or key not set"}
    client = services.anthropic.with_options(max_retries=0, timeout=QUEUE_STATS_TIMEOUT_SECONDS)
    try:
        stats = await client.beta.environments.work.stats(settings.environment_id)
    except anthropic.APIError as exc:
        return {"error": f"queue stats unavailable: {type(exc).__name__}"}
    return {
        "depth": stats.depth,
        "pending": stats.pending,
        "oldest_queued_at": stats.oldest_queued_at,
        "workers_polling": stats.workers_polling,
    }


async def snapshot(services: Any) -> dict[str, Any]:
    """Everything `/status` shows; also refreshes the metrics' gauges. Run on the dispatch
    loop (`DispatchLoop.run`): the dispatcher's state is read in the thread that changes it."""
    queue = await queue_stats(services)
    dispatch = dispatcher_snapshot(services.dispatcher)
    services.metrics.set_gauges(
        len(dispatch["sessions_in_flight"]), dispatch["workers_by_state"], queue
    )
    return {
        "environment_id": services.settings.environment_id,
        "dispatching": not services.not_dispatching,
        "not_dispatching": list(services.not_dispatching),
        "queue": queue,
        **dispatch,
        "counters": services.metrics.totals(),
    }


async def status(request: Request) -> JSONResponse:
    """The orchestrator's state as JSON (token required)."""
    require_token(request)
    services = request.state.services
    return JSONResponse(await services.dispatch.run(snapshot(services)))


async def metrics(request: Request) -> Response:
    """Prometheus text exposition (token required)."""
    require_token(request)
    services = request.state.services
    await services.dispatch.run(snapshot(services))
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
