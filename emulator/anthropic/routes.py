"""Thin Starlette routes of the emulated Anthropic API (`/v1/...`) over `AnthropicBackend`.

Each handler authenticates, checks the caller may touch the resource, and calls one
backend operation of the same name; errors become Anthropic's error shape in `api_route`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.anthropic import auth
from emulator.anthropic.auth import Principal
from emulator.anthropic.common import new_id
from emulator.anthropic.exceptions import (
    AnthropicAPIError,
    InvalidRequestError,
    NotFoundError,
    error_response,
)
from emulator.anthropic.models import AnthropicBackend

MANAGED_AGENTS_BETA = "managed-agents-2026-04-01"
WEBHOOKS_BETA = "webhooks-2026-10-07"

Handler = Callable[[Request, Principal], Awaitable[Any]]
T = TypeVar("T")


def _betas(request: Request) -> set[str]:
    return {b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip()}


def check_beta(request: Request, beta: str) -> None:
    if beta in _betas(request):
        return
    if beta == WEBHOOKS_BETA:  # documented: without the header this API does not exist
        raise NotFoundError("Not found")
    raise InvalidRequestError(
        f"This endpoint is in beta: requests must send the anthropic-beta header {beta}"
    )


def api_route(
    backend: AnthropicBackend, handler: Handler, *, beta: str | None = MANAGED_AGENTS_BETA
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: authenticate, check the beta header, render errors and JSON."""

    async def endpoint(request: Request) -> Response:
        request_id = new_id("req")
        try:
            principal = backend.authenticate(request.headers)
            if beta is not None:
                check_beta(request, beta)
            result = await handler(request, principal)
        except AnthropicAPIError as exc:
            return error_response(exc, request_id)
        if isinstance(result, Response):
            result.headers["request-id"] = request_id
            return result
        return JSONResponse(result, headers={"request-id": request_id})

    return endpoint


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    return body


def query_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: must be an integer, got {value!r}") from exc


def query_bool(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def query_list(request: Request, name: str) -> list[str]:
    """Arrays as the SDK sends them (`name[]=a&name[]=b`), or repeated / comma-separated."""
    values = request.query_params.getlist(name + "[]") + request.query_params.getlist(name)
    return [v for value in values for v in value.split(",") if v]


async def until_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """Run `work`, abandoning it if the client goes away (a cancelled long poll must not linger)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        return None
    return task.result()


def _path(request: Request, name: str) -> str:
    return str(request.path_params[name])


# -- environments ----------------------------------------------------------------------


def environment_routes(backend: AnthropicBackend) -> list[Route]:
    async def create(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.create_environment(await json_body(request))

    async def list_(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.list_environments(
            include_archived=query_bool(request, "include_archived"),
            limit=query_int(request, "limit"),
            page=request.query_params.get("page"),
        )

    async def retrieve(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.retrieve_environment(_path(request, "environment_id"))

    async def update(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.update_environment(
            _path(request, "environment_id"), await json_body(request)
        )

    async def delete(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.delete_environment(_path(request, "environment_id"))

    async def archive(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.archive_environment(_path(request, "environment_id"))

    r = api_route
    base = "/v1/environments"
    return [
        Route(base, r(backend, create), methods=["POST"]),
        Route(base, r(backend, list_), methods=["GET"]),
        Route(base + "/{environment_id}", r(backend, retrieve), methods=["GET"]),
        Route(base + "/{environment_id}", r(backend, update), methods=["POST"]),
        Route(base + "/{environment_id}", r(backend, delete), methods=["DELETE"]),
        Route(base + "/{environment_id}/archive", r(backend, archive), methods=["POST"]),
    ]


# -- work queue ------------------------------------------------------------------------


def work_routes(backend: AnthropicBackend) -> list[Route]:
    async def poll(request: Request, who: Principal) -> Any:
        environment_id = _path(request, "environment_id")
        auth.require_environment_key(who, environment_id)
        poll = backend.poll_work(
            environment_id,
            worker_id=request.headers.get("anthropic-worker-id"),
            block_ms=query_int(request, "block_ms"),
            reclaim_older_than_ms=query_int(request, "reclaim_older_than_ms"),
        )
        item = await until_disconnected(request, poll)
        # An empty queue is `200 null`, never 204: the SDK parses the body.
        return JSONResponse(item)

    async def stats(request: Request, who: Principal) -> Any:
        environment_id = _path(request, "environment_id")
        auth.require_key_for_environment(who, environment_id)
        return backend.work_stats(environment_id)

    async def list_(request: Request, who: Principal) -> Any:
        environment_id = _path(request, "environment_id")
        auth.require_environment_key(who, environment_id)
        return backend.list_work(
            environment_id, limit=query_int(request, "limit"), page=request.query_params.get("page")
        )

    async def retrieve(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.retrieve_work(_path(request, "environment_id"), _path(request, "work_id"))

    async def update(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        body = await json_body(request)
        return backend.update_work(
            _path(request, "environment_id"), _path(request, "work_id"), body.get("metadata")
        )

    async def ack(request: Request, who: Principal) -> Any:
        environment_id = _path(request, "environment_id")
        auth.require_environment_key(who, environment_id)
        return backend.ack_work(environment_id, _path(request, "work_id"))

    async def heartbeat(request: Request, who: Principal) -> Any:
        environment_id, work_id = _path(request, "environment_id"), _path(request, "work_id")
        auth.require_work_access(who, environment_id, work_id, api_key_ok=False)
        return backend.heartbeat_work(
            environment_id,
            work_id,
            expected_last_heartbeat=request.query_params.get("expected_last_heartbeat"),
            desired_ttl_seconds=query_int(request, "desired_ttl_seconds"),
        )

    async def stop(request: Request, who: Principal) -> Any:
        environment_id, work_id = _path(request, "environment_id"), _path(request, "work_id")
        auth.require_work_access(who, environment_id, work_id, api_key_ok=True)
        body = await json_body(request)
        return backend.stop_work(environment_id, work_id, force=bool(body.get("force")))

    r = api_route
    base = "/v1/environments/{environment_id}/work"
    return [
        Route(base + "/poll", r(backend, poll), methods=["GET"]),
        Route(base + "/stats", r(backend, stats), methods=["GET"]),
        Route(base, r(backend, list_), methods=["GET"]),
        Route(base + "/{work_id}", r(backend, retrieve), methods=["GET"]),
        Route(base + "/{work_id}", r(backend, update), methods=["POST"]),
        Route(base + "/{work_id}/ack", r(backend, ack), methods=["POST"]),
        Route(base + "/{work_id}/heartbeat", r(backend, heartbeat), methods=["POST"]),
        Route(base + "/{work_id}/stop", r(backend, stop), methods=["POST"]),
    ]


# -- agents ----------------------------------------------------------------------------


def agent_routes(backend: AnthropicBackend) -> list[Route]:
    async def create(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.create_agent(await json_body(request))

    async def list_(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.list_agents(
            include_archived=query_bool(request, "include_archived"),
            limit=query_int(request, "limit"),
            page=request.query_params.get("page"),
        )

    async def retrieve(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.retrieve_agent(_path(request, "agent_id"), query_int(request, "version"))

    async def update(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.update_agent(_path(request, "agent_id"), await json_body(request))

    async def archive(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.archive_agent(_path(request, "agent_id"))

    async def versions(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.list_agent_versions(
            _path(request, "agent_id"),
            limit=query_int(request, "limit"),
            page=request.query_params.get("page"),
        )

    r = api_route
    return [
        Route("/v1/agents", r(backend, create), methods=["POST"]),
        Route("/v1/agents", r(backend, list_), methods=["GET"]),
        Route("/v1/agents/{agent_id}", r(backend, retrieve), methods=["GET"]),
        Route("/v1/agents/{agent_id}", r(backend, update), methods=["POST"]),
        Route("/v1/agents/{agent_id}/archive", r(backend, archive), methods=["POST"]),
        Route("/v1/agents/{agent_id}/versions", r(backend, versions), methods=["GET"]),
    ]


def not_found_route(backend: AnthropicBackend) -> Route:
    """Unknown `/v1/...` paths: Anthropic's 404 JSON rather than Starlette's plain text."""

    async def not_found(request: Request) -> Response:
        return error_response(
            NotFoundError(f"Not found: {request.method} {request.url.path}"), new_id("req")
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Route("/v1/{path:path}", not_found, methods=methods)
