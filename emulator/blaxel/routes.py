"""Thin Starlette routes for the Blaxel control plane (`/v0/...`) and the image upload URL.

`blaxel_routes(backend)` returns every Blaxel route, to be mounted under `/blaxel`:
`/v0/...` the control plane, `/sandboxes/{name}/...` each sandbox's own API,
`/previews/{sandbox}/{preview}/...` preview URLs, `/uploads/{name}` image uploads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.blaxel.auth import authenticate
from emulator.blaxel.exceptions import (
    BadRequest,
    BlaxelError,
    NotFound,
    action_error,
    api_error,
)
from emulator.blaxel.images import image_view, tag_view
from emulator.blaxel.models import BlaxelBackend
from emulator.blaxel.sandbox_routes import preview_routes, sandbox_api_routes

Handler = Callable[[Request], Awaitable[Response]]


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _page(items: list[dict[str, Any]], request: Request | None = None) -> dict[str, Any]:
    """The cursor-paginated listing (API version 2026-04-28 and later); the cursor is an offset."""
    try:
        start = int(request.query_params.get("cursor") or 0) if request else 0
        limit = int(request.query_params.get("limit") or 50) if request else len(items) or 1
    except ValueError as exc:
        raise BadRequest(f"invalid cursor or limit: {exc}") from exc
    end = start + max(1, limit)
    more = end < len(items)
    meta = {"hasMore": more, "nextCursor": str(end) if more else "", "total": len(items)}
    return {"data": items[start:end], "meta": meta}


def control_plane_routes(backend: BlaxelBackend) -> list[BaseRoute]:
    config = backend.config

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                authenticate(request.headers, config)
                return await handler(request)
            except BlaxelError as error:
                return api_error(error)

        return endpoint

    def sandbox_response(sandbox: Any, upload: bool = False) -> Response:
        headers = {"x-blaxel-upload-url": backend.upload_url(sandbox)} if upload else None
        return JSONResponse(backend.sandbox_view(sandbox), headers=headers)

    async def create_sandbox(request: Request) -> Response:
        # Creation errors have their own shape (SandboxError), auth errors included.
        name = None
        try:
            authenticate(request.headers, config)
            body = await json_body(request)
            name = (body.get("metadata") or {}).get("name")
            upload = _flag(request, "upload")
            create_if_not_exist = _flag(request, "createIfNotExist")
            if create_if_not_exist and isinstance(name, str):
                # A deletion in flight is waited for server-side (SDK create_if_not_exists).
                await backend.until_settled(name, "DELETING")
            sandbox = backend.create_sandbox(body, create_if_not_exist, upload)
            return sandbox_response(sandbox, upload)
        except BlaxelError as error:
            return action_error(error, backend.workspace, name)

    async def list_sandboxes(request: Request) -> Response:
        views = [backend.sandbox_view(s) for s in backend.list_sandboxes()]
        return JSONResponse(_page(views, request))

    async def get_sandbox(request: Request) -> Response:
        return sandbox_response(backend.get_sandbox(request.path_params["name"]))

    async def update_sandbox(request: Request) -> Response:
        upload = _flag(request, "upload")
        body = await json_body(request)
        sandbox = backend.update_sandbox(request.path_params["name"], body, upload)
        return sandbox_response(sandbox, upload)

    async def delete_sandbox(request: Request) -> Response:
        view = backend.sandbox_view(backend.delete_sandbox(request.path_params["name"]))
        return JSONResponse(view)

    async def create_preview(request: Request) -> Response:
        preview = backend.create_preview(request.path_params["name"], await json_body(request))
        return JSONResponse(preview.to_dict(backend.workspace))

    async def list_previews(request: Request) -> Response:
        previews = backend.list_previews(request.path_params["name"])
        return JSONResponse([p.to_dict(backend.workspace) for p in previews])

    async def get_preview(request: Request) -> Response:
        preview = backend.get_preview(request.path_params["name"], request.path_params["preview"])
        return JSONResponse(preview.to_dict(backend.workspace))

    async def update_preview(request: Request) -> Response:
        params = request.path_params
        preview = backend.update_preview(
            params["name"], params["preview"], await json_body(request)
        )
        return JSONResponse(preview.to_dict(backend.workspace))

    async def delete_preview(request: Request) -> Response:
        preview = backend.delete_preview(
            request.path_params["name"], request.path_params["preview"]
        )
        return JSONResponse(preview.to_dict(backend.workspace, status="TERMINATED"))

    async def create_volume(request: Request) -> Response:
        volume = backend.create_volume(await json_body(request))
        return JSONResponse(volume.to_dict(backend.workspace))

    async def list_volumes(request: Request) -> Response:
        views = [v.to_dict(backend.workspace) for v in backend.list_volumes()]
        return JSONResponse(_page(views, request))

    async def get_volume(request: Request) -> Response:
        return JSONResponse(
            backend.get_volume(request.path_params["name"]).to_dict(backend.workspace)
        )

    async def delete_volume(request: Request) -> Response:
        volume = backend.delete_volume(request.path_params["name"])
        return JSONResponse(volume.to_dict(backend.workspace, status="DELETING"))

    def image_tags(request: Request) -> list[Any]:
        if request.path_params["kind"] != "sandbox":  # only sandbox images are pushed here
            raise NotFound(
                f"Image '{request.path_params['kind']}/{request.path_params['name']}' not found"
            )
        return backend.images.tags(request.path_params["name"])

    async def list_images(request: Request) -> Response:
        names = sorted({image.name for image in backend.images.pushed()})
        views = [image_view(backend.images.tags(n), backend.workspace, False) for n in names]
        return JSONResponse(_page(views, request))

    async def get_image(request: Request) -> Response:
        return JSONResponse(image_view(image_tags(request), backend.workspace, False))

    async def list_image_tags(request: Request) -> Response:
        return JSONResponse(_page([tag_view(t) for t in image_tags(request)], request))

    async def delete_image(request: Request) -> Response:
        image_tags(request)
        tags = backend.images.delete(request.path_params["name"])
        return JSONResponse(image_view(tags, backend.workspace, True))

    async def get_configuration(request: Request) -> Response:
        return JSONResponse(backend.configuration())

    sandbox, preview = "/v0/sandboxes/{name}", "/v0/sandboxes/{name}/previews/{preview}"
    image = "/v0/images/{kind}/{name}"
    return [
        Route("/v0/configuration", guarded(get_configuration), methods=["GET"]),
        Route("/v0/sandboxes", create_sandbox, methods=["POST"]),
        Route("/v0/sandboxes", guarded(list_sandboxes), methods=["GET"]),
        Route(sandbox, guarded(get_sandbox), methods=["GET"]),
        Route(sandbox, guarded(update_sandbox), methods=["PUT"]),
        Route(sandbox, guarded(delete_sandbox), methods=["DELETE"]),
        Route(sandbox + "/previews", guarded(create_preview), methods=["POST"]),
        Route(sandbox + "/previews", guarded(list_previews), methods=["GET"]),
        Route(preview, guarded(get_preview), methods=["GET"]),
        Route(preview, guarded(update_preview), methods=["PUT"]),
        Route(preview, guarded(delete_preview), methods=["DELETE"]),
        Route("/v0/volumes", guarded(create_volume), methods=["POST"]),
        Route("/v0/volumes", guarded(list_volumes), methods=["GET"]),
        Route("/v0/volumes/{name}", guarded(get_volume), methods=["GET"]),
        Route("/v0/volumes/{name}", guarded(delete_volume), methods=["DELETE"]),
        Route("/v0/images", guarded(list_images), methods=["GET"]),
        Route(image, guarded(get_image), methods=["GET"]),
        Route(image, guarded(delete_image), methods=["DELETE"]),
        Route(image + "/tags", guarded(list_image_tags), methods=["GET"]),
    ]


def upload_routes(backend: BlaxelBackend) -> list[BaseRoute]:
    async def upload(request: Request) -> Response:
        # A pre-signed URL: the token in the query is the credential, as with object storage.
        try:
            token = request.query_params.get("token", "")
            backend.push_image(request.path_params["name"], token, await request.body())
        except BlaxelError as error:
            return Response(error.message, status_code=error.status, media_type="text/plain")
        return Response(status_code=200)

    return [Route("/uploads/{name}", upload, methods=["PUT"])]


def blaxel_routes(backend: BlaxelBackend) -> list[BaseRoute]:
    """Every Blaxel route, relative to the `/blaxel` mount."""
    return [
        *control_plane_routes(backend),
        *upload_routes(backend),
        *sandbox_api_routes(backend),
        *preview_routes(backend),
    ]
