"""A loopback reverse proxy: a preview URL (or the sandbox API's /port/{port}) to a host port."""

from __future__ import annotations

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones httpx recomputes.
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip


def _forward_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]


def _forwarded(request: Request, path: str) -> list[tuple[str, str]]:
    full = request.url.path
    prefix = full[: len(full) - len(path)] if path and full.endswith(path) else full
    return [
        ("x-forwarded-host", request.headers.get("host", "")),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-prefix", prefix.rstrip("/")),
        ("x-forwarded-for", request.client.host if request.client else ""),
    ]


async def proxy(client: httpx.AsyncClient, request: Request, host_port: int, path: str) -> Response:
    """Send the request to 127.0.0.1:host_port/path and stream the answer back as is.

    The upstream sees the public host, scheme and URL prefix in the usual X-Forwarded-* headers.
    """
    url = httpx.URL(f"http://127.0.0.1:{host_port}/{path.lstrip('/')}")
    if request.url.query:  # an empty `query=` would still add a bare "?" upstream
        url = url.copy_with(query=request.url.query.encode())
    upstream_request = client.build_request(
        request.method,
        url,
        headers=[
            *[(k, v) for k, v in _forward_headers(request.headers.items()) if "forwarded" not in k],
            *_forwarded(request, path),
        ],
        content=await request.body(),
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TransportError:
        body = {
            "error": {
                "code": "WORKLOAD_UNAVAILABLE",
                "message": f"nothing is listening on the sandbox port behind this URL ({path})",
                "status": 502,
            }
        }
        return JSONResponse(body, status_code=502)
    headers = _forward_headers(upstream.headers.multi_items())
    response = StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        background=BackgroundTask(upstream.aclose),
    )
    # Replace Starlette's defaults with the upstream's own headers (repeated ones kept).
    response.raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers]
    return response
