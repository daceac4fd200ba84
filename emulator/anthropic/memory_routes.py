"""Thin routes of `/v1/memory_stores/...` (beta header `agent-memory-2026-07-22`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from emulator.anthropic.auth import Principal
from emulator.anthropic.models import AnthropicBackend
from emulator.anthropic.routes import api_route, json_body, query_int

MEMORY_BETA = "agent-memory-2026-07-22"


def memory_store_routes(backend: AnthropicBackend) -> list[Route]:
    def store_id(request: Request) -> str:
        return str(request.path_params["memory_store_id"])

    def memory_id(request: Request) -> str:
        return str(request.path_params["memory_id"])

    def view(request: Request) -> str | None:
        return request.query_params.get("view")

    async def create_store(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, "", manage=True)
        return backend.create_memory_store(await json_body(request))

    async def list_stores(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, "", manage=True)
        return backend.list_memory_stores(
            limit=query_int(request, "limit"), page=request.query_params.get("page")
        )

    async def retrieve_store(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request))
        return backend.retrieve_memory_store(store_id(request))

    async def archive_store(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request), manage=True)
        return backend.archive_memory_store(store_id(request))

    async def delete_store(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request), manage=True)
        return backend.delete_memory_store(store_id(request))

    async def create_memory(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request))
        return backend.create_memory(store_id(request), await json_body(request), view(request))

    async def list_memories(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request))
        return backend.list_memories(
            store_id(request),
            path_prefix=request.query_params.get("path_prefix"),
            limit=query_int(request, "limit"),
            page=request.query_params.get("page"),
            view=view(request),
        )

    async def retrieve_memory(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request))
        return backend.retrieve_memory(store_id(request), memory_id(request), view(request))

    async def update_memory(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request))
        body = await json_body(request)
        return backend.update_memory(store_id(request), memory_id(request), body, view(request))

    async def delete_memory(request: Request, who: Principal) -> Any:
        backend.check_memory_access(who, store_id(request))
        expected = request.query_params.get("expected_content_sha256")
        return backend.delete_memory(store_id(request), memory_id(request), expected)

    def route(path: str, handler: Any, method: str) -> Route:
        return Route(path, api_route(backend, handler, beta=MEMORY_BETA), methods=[method])

    stores, store = "/v1/memory_stores", "/v1/memory_stores/{memory_store_id}"
    memories, memory = store + "/memories", store + "/memories/{memory_id}"
    return [
        route(stores, create_store, "POST"),
        route(stores, list_stores, "GET"),
        route(store, retrieve_store, "GET"),
        route(store, delete_store, "DELETE"),
        route(store + "/archive", archive_store, "POST"),
        route(memories, create_memory, "POST"),
        route(memories, list_memories, "GET"),
        route(memory, retrieve_memory, "GET"),
        route(memory, update_memory, "POST"),
        route(memory, delete_memory, "DELETE"),
    ]
