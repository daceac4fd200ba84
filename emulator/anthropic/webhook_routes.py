"""Routes for webhook endpoints: the organization webhooks API (`/v1/organizations/webhooks`)
and the Console stand-in (`/_console/...`, mounted by the app), which also mints environment keys.

The Console stands in for a signed-in human, so its routes take no API credential.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.anthropic import auth
from emulator.anthropic.auth import Principal
from emulator.anthropic.common import new_id
from emulator.anthropic.exceptions import AnthropicAPIError, error_response
from emulator.anthropic.models import AnthropicBackend
from emulator.anthropic.routes import WEBHOOKS_BETA, api_route, json_body


def organization_webhook_routes(backend: AnthropicBackend) -> list[Route]:
    async def create(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.create_organization_webhook(await json_body(request))

    async def list_(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.list_organization_webhooks()

    async def retrieve(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.retrieve_organization_webhook(str(request.path_params["endpoint_id"]))

    async def update(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        body = await json_body(request)
        return backend.update_organization_webhook(str(request.path_params["endpoint_id"]), body)

    async def delete(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.delete_organization_webhook(str(request.path_params["endpoint_id"]))

    async def regenerate(request: Request, who: Principal) -> Any:
        auth.require_api_key(who)
        return backend.regenerate_signing_secret(str(request.path_params["endpoint_id"]))

    def r(
        handler: Callable[[Request, Principal], Awaitable[Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        return api_route(backend, handler, beta=WEBHOOKS_BETA)

    base = "/v1/organizations/webhooks"
    return [
        Route(base, r(create), methods=["POST"]),
        Route(base, r(list_), methods=["GET"]),
        Route(base + "/{endpoint_id}", r(retrieve), methods=["GET"]),
        Route(base + "/{endpoint_id}", r(update), methods=["POST"]),
        Route(base + "/{endpoint_id}", r(delete), methods=["DELETE"]),
        Route(base + "/{endpoint_id}/regenerate_signing_secret", r(regenerate), methods=["POST"]),
    ]


def _console(
    handler: Callable[[Request], Awaitable[Any]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except AnthropicAPIError as exc:
            return error_response(exc, new_id("req"))

    return endpoint


def console_routes(backend: AnthropicBackend) -> list[Route]:
    """The Console stand-in, as docs/contracts.md lists it (mounted under `/_console`)."""

    async def mint_key(request: Request) -> Any:
        return {"key": backend.mint_environment_key(str(request.path_params["environment_id"]))}

    async def register(request: Request) -> Any:
        body = await json_body(request)
        return backend.register_workspace_webhook(body.get("url"), body.get("events"))

    async def list_(request: Request) -> Any:
        return backend.list_workspace_webhooks()

    async def delete(request: Request) -> Any:
        return backend.delete_workspace_webhook(str(request.path_params["endpoint_id"]))

    async def redeliver(request: Request) -> Any:
        body = await json_body(request)
        return backend.redeliver_webhook(
            str(request.path_params["endpoint_id"]), body.get("event_id")
        )

    return [
        Route("/environments/{environment_id}/keys", _console(mint_key), methods=["POST"]),
        Route("/webhooks", _console(register), methods=["POST"]),
        Route("/webhooks", _console(list_), methods=["GET"]),
        Route("/webhooks/{endpoint_id}", _console(delete), methods=["DELETE"]),
        Route("/webhooks/{endpoint_id}/redeliver", _console(redeliver), methods=["POST"]),
    ]
