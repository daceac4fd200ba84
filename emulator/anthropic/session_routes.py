"""Routes for sessions and their events, including the SSE event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from emulator.anthropic import auth
from emulator.anthropic.auth import Principal
from emulator.anthropic.models import AnthropicBackend
from emulator.anthropic.routes import api_route, json_body, query_bool, query_int, query_list

STREAM_PING_SECONDS = 10.0
_ENDS_STREAM = ("session.deleted", "session.status_terminated")


def sse(event: dict[str, Any]) -> str:
    """One server-sent event; the SDK skips messages without an `event:` name."""
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def _check_session(backend: AnthropicBackend, who: Principal, session_id: str) -> None:
    """404 for an unknown session, 403 when the credential does not reach it."""
    auth.require_session_access(who, backend.session_environment(session_id), session_id)


async def stream_events(
    backend: AnthropicBackend, session_id: str, start: int
) -> AsyncIterator[str]:
    """Live events from `start` on; pings keep idle connections open; ends with the session."""
    index = start
    while True:
        with backend.watching() as changed:
            events, gone = backend.events_since(session_id, index)
            for event in events:
                yield sse(event)
            index += len(events)
            if gone or backend.streams_closed or any(e["type"] in _ENDS_STREAM for e in events):
                return
            try:
                await asyncio.wait_for(changed.wait(), STREAM_PING_SECONDS)
            except TimeoutError:
                yield "event: ping\ndata: {}\n\n"


def session_routes(backend: AnthropicBackend) -> list[Route]:
    async def create(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.create_session(await json_body(request))

    async def list_(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.list_sessions(
            agent_id=request.query_params.get("agent_id"),
            include_archived=query_bool(request, "include_archived"),
            statuses=query_list(request, "statuses"),
            order=request.query_params.get("order"),
            limit=query_int(request, "limit"),
            page=request.query_params.get("page"),
            agent_version=query_int(request, "agent_version"),
            created_at={
                op: request.query_params[f"created_at[{op}]"]
                for op in ("gt", "gte", "lt", "lte")
                if f"created_at[{op}]" in request.query_params
            },
            memory_store_id=request.query_params.get("memory_store_id"),
            deployment_id=request.query_params.get("deployment_id"),
        )

    async def retrieve(request: Request, who: Principal) -> Any:
        session_id = str(request.path_params["session_id"])
        _check_session(backend, who, session_id)
        return backend.retrieve_session(session_id)

    async def update(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.update_session(
            str(request.path_params["session_id"]), await json_body(request)
        )

    async def delete(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.delete_session(str(request.path_params["session_id"]))

    async def archive(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.archive_session(str(request.path_params["session_id"]))

    async def list_events(request: Request, who: Principal) -> Any:
        session_id = str(request.path_params["session_id"])
        _check_session(backend, who, session_id)
        bounds = {
            op: request.query_params[f"created_at[{op}]"]
            for op in ("gt", "gte", "lt", "lte")
            if f"created_at[{op}]" in request.query_params
        }
        return backend.list_events(
            session_id,
            limit=query_int(request, "limit"),
            page=request.query_params.get("page"),
            order=request.query_params.get("order"),
            types=query_list(request, "types"),
            created_at=bounds,
        )

    async def send_events(request: Request, who: Principal) -> Any:
        session_id = str(request.path_params["session_id"])
        _check_session(backend, who, session_id)
        body = await json_body(request)
        return backend.send_events(session_id, body.get("events"))

    async def stream(request: Request, who: Principal) -> Any:
        session_id = str(request.path_params["session_id"])
        _check_session(backend, who, session_id)
        start = len(backend.events_since(session_id, 0)[0])
        return StreamingResponse(
            stream_events(backend, session_id, start),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    r = api_route
    return [
        Route("/v1/sessions", r(backend, create), methods=["POST"]),
        Route("/v1/sessions", r(backend, list_), methods=["GET"]),
        Route("/v1/sessions/{session_id}", r(backend, retrieve), methods=["GET"]),
        Route("/v1/sessions/{session_id}", r(backend, update), methods=["POST"]),
        Route("/v1/sessions/{session_id}", r(backend, delete), methods=["DELETE"]),
        Route("/v1/sessions/{session_id}/archive", r(backend, archive), methods=["POST"]),
        Route("/v1/sessions/{session_id}/events", r(backend, list_events), methods=["GET"]),
        Route("/v1/sessions/{session_id}/events", r(backend, send_events), methods=["POST"]),
        Route("/v1/sessions/{session_id}/events/stream", r(backend, stream), methods=["GET"]),
    ]
