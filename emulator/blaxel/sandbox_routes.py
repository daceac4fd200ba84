"""Thin routes for each sandbox's own API (its `metadata.url`) and for preview URLs.

Sandbox API errors are `{"error": <message>}`; failures in front of the sandbox (credentials,
unknown sandbox or preview) use the edge gateway's envelope `{"error": {code, message, status}}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from emulator.blaxel import files
from emulator.blaxel.auth import authenticate
from emulator.blaxel.exceptions import BadRequest, BlaxelError, NotFound, sandbox_api_error
from emulator.blaxel.models import BlaxelBackend, free_port
from emulator.blaxel.previews import proxy
from emulator.blaxel.processes import SandboxProcess

Handler = Callable[[Request], Awaitable[Response]]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
POLL_S = 0.05


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; BadRequest (the API's 400) for anything else."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def gateway_error(error: BlaxelError) -> JSONResponse:
    body = {"error": {"code": error.code, "message": error.message, "status": error.status}}
    return JSONResponse(body, status_code=error.status)


async def _finished(process: SandboxProcess, timeout_s: float | None) -> None:
    """Wait (without blocking the loop) until the process ends or the timeout passes."""
    waited = 0.0
    while process.running and (timeout_s is None or waited < timeout_s):
        await asyncio.sleep(POLL_S)
        waited += POLL_S


async def _listening(process: SandboxProcess, host_ports: list[int], limit_s: float = 60) -> None:
    """Wait until every host port accepts connections, the process ends, or the limit passes."""
    waited = 0.0
    pending = list(host_ports)
    while pending and process.running and waited < limit_s:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", pending[0])
        except OSError:
            await asyncio.sleep(POLL_S)
            waited += POLL_S
            continue
        writer.close()
        await writer.wait_closed()
        pending.pop(0)


def sandbox_api_routes(backend: BlaxelBackend) -> list[BaseRoute]:
    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                authenticate(request.headers, backend.config)
                await backend.until_deployed(request.path_params["name"])
                backend.sandbox_for_api(request.path_params["name"])
            except NotFound as error:
                return gateway_error(NotFound(error.message, code="WORKLOAD_NOT_FOUND"))
            except BlaxelError as error:
                return gateway_error(error)
            try:
                return await handler(request)
            except BlaxelError as error:
                return sandbox_api_error(error)

        return endpoint

    def name_and_id(request: Request) -> tuple[str, str]:
        return request.path_params["name"], request.path_params["identifier"]

    async def exec_process(request: Request) -> Response:
        body = await json_body(request)
        process = backend.exec_process(request.path_params["name"], body)
        if body.get("waitForCompletion"):
            await _finished(process, None)
        elif body.get("waitForPorts"):
            sandbox = backend.sandbox_for_api(request.path_params["name"])
            host_ports = [
                sandbox.ports.setdefault(int(p), free_port()) for p in body["waitForPorts"]
            ]
            await _listening(process, host_ports)
        return JSONResponse(process.to_response())

    async def list_processes(request: Request) -> Response:
        processes = backend.list_processes(request.path_params["name"])
        return JSONResponse([p.to_response() for p in processes])

    async def get_process(request: Request) -> Response:
        return JSONResponse(backend.get_process(*name_and_id(request)).to_response())

    async def wait_process(request: Request) -> Response:
        process = backend.get_process(*name_and_id(request))
        await _finished(process, float(request.query_params.get("timeout", "60")))
        return JSONResponse(process.to_response())

    async def process_logs(request: Request) -> Response:
        stdout, stderr, logs = backend.get_process(*name_and_id(request)).output()
        return JSONResponse({"stdout": stdout, "stderr": stderr, "logs": logs})

    async def stream_logs(request: Request) -> Response:
        process = backend.get_process(*name_and_id(request))
        return StreamingResponse(_log_lines(process), media_type="text/plain")

    async def stop_process(request: Request) -> Response:
        backend.stop_process(*name_and_id(request))
        return JSONResponse({"message": "Process stopped successfully"})

    async def kill_process(request: Request) -> Response:
        backend.kill_process(*name_and_id(request))
        return JSONResponse({"message": "Process killed successfully"})

    async def read_path(request: Request) -> Response:
        sandbox = backend.sandbox_for_api(request.path_params["name"])
        path = request.path_params["path"]
        host = files.stat_path(sandbox.root, path)
        if host.is_dir():
            return JSONResponse(files.list_directory(sandbox.root, path))
        if "application/octet-stream" in request.headers.get("accept", ""):
            return Response(host.read_bytes(), media_type="application/octet-stream")
        entry = files.file_entry(host, files.display_path(path))
        return JSONResponse({**entry, "content": host.read_bytes().decode(errors="replace")})

    async def write_path(request: Request) -> Response:
        sandbox = backend.sandbox_for_api(request.path_params["name"])
        path = request.path_params["path"]
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form() as form:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise BadRequest("multipart upload needs a 'file' part")
                permissions = str(form.get("permissions") or "") or None
                content = await upload.read()
            files.write_file(sandbox.root, path, content, permissions)
            return JSONResponse({"message": "File created successfully", "path": path})
        body = await json_body(request)
        if body.get("isDirectory"):
            files.make_directory(sandbox.root, path, body.get("permissions"))
            return JSONResponse({"message": "Directory created successfully", "path": path})
        content = str(body.get("content") or "").encode()
        files.write_file(sandbox.root, path, content, body.get("permissions"))
        return JSONResponse({"message": "File created successfully", "path": path})

    async def delete_path(request: Request) -> Response:
        sandbox = backend.sandbox_for_api(request.path_params["name"])
        path = request.path_params["path"]
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        files.delete_path(sandbox.root, path, recursive)
        return JSONResponse({"message": "Path deleted successfully", "path": path})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def port_proxy(request: Request) -> Response:
        sandbox = backend.sandbox_for_api(request.path_params["name"])
        port = int(request.path_params["port"])
        host_port = sandbox.ports.get(port)
        if host_port is None or backend.http is None:
            raise NotFound(f"port {port} is not a port of this sandbox")
        return await proxy(backend.http, request, host_port, request.path_params.get("path", ""))

    base, process = "/sandboxes/{name}", "/sandboxes/{name}/process/{identifier}"
    return [
        Route(base + "/process", guarded(exec_process), methods=["POST"]),
        Route(base + "/process", guarded(list_processes), methods=["GET"]),
        Route(process, guarded(get_process), methods=["GET"]),
        Route(process, guarded(stop_process), methods=["DELETE"]),
        Route(process + "/kill", guarded(kill_process), methods=["DELETE"]),
        Route(process + "/wait", guarded(wait_process), methods=["GET"]),
        Route(process + "/logs", guarded(process_logs), methods=["GET"]),
        Route(process + "/logs/stream", guarded(stream_logs), methods=["GET"]),
        Route(base + "/filesystem/{path:path}", guarded(read_path), methods=["GET"]),
        Route(base + "/filesystem/{path:path}", guarded(write_path), methods=["PUT"]),
        Route(base + "/filesystem/{path:path}", guarded(delete_path), methods=["DELETE"]),
        Route(base + "/health", guarded(health), methods=["GET"]),
        Route(base + "/port/{port:int}", guarded(port_proxy), methods=ALL_METHODS),
        Route(base + "/port/{port:int}/{path:path}", guarded(port_proxy), methods=ALL_METHODS),
    ]


async def _log_lines(process: SandboxProcess) -> AsyncIterator[str]:
    """`stdout:`/`stderr:` prefixed lines, following the process until it ends."""
    sent = {"stdout": 0, "stderr": 0}
    while True:
        running = process.running
        stdout, stderr, _ = process.output()
        for stream, text in (("stdout", stdout), ("stderr", stderr)):
            new = text[sent[stream] :]
            complete = new if not running else new[: new.rfind("\n") + 1]
            sent[stream] += len(complete)
            for line in complete.splitlines():
                yield f"{stream}:{line}\n"
        if not running:
            return
        await asyncio.sleep(POLL_S)


def preview_routes(backend: BlaxelBackend) -> list[BaseRoute]:
    async def forward(request: Request) -> Response:
        params = request.path_params
        try:
            await backend.until_deployed(params["sandbox"])
            _, preview, host_port = backend.preview_target(params["sandbox"], params["preview"])
            if not preview.public:
                authenticate(request.headers, backend.config)
        except NotFound as error:
            return gateway_error(NotFound(error.message, code="ROUTE_NOT_FOUND"))
        except BlaxelError as error:
            return gateway_error(error)
        assert backend.http is not None
        return await proxy(backend.http, request, host_port, params.get("path", ""))

    base = "/previews/{sandbox}/{preview}"
    return [
        Route(base, forward, methods=ALL_METHODS),
        Route(base + "/{path:path}", forward, methods=ALL_METHODS),
    ]
