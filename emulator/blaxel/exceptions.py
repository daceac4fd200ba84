"""Blaxel's error shapes, as the official SDK (blaxel 0.4.24, `blaxel.core.errors`) parses them.

BlaxelError                      one failure: HTTP status, a stable code, a message
 ├── BadRequest                  400  (VALIDATION_FAILED, INVALID_NAME, ...)
 ├── Unauthorized                401  (AUTHENTICATION_REQUIRED)
 ├── Forbidden                   403  (UNAUTHORIZED, UNAUTHORIZED_WORKSPACE)
 ├── NotFound                    404
 ├── Conflict                    409
 └── Unavailable                 503  (WORKLOAD_UNAVAILABLE: a sandbox not deployed yet)

The same failure renders differently per surface (the SDK has one model per surface):
- control plane, most endpoints: `Error` = `{"error": <code>, "code": <status>, "message"}`;
- control plane, sandbox creation: `SandboxError` = `{"code": <code>, "message", "status_code",
  "step", "workspace", "sandbox_name", "timestamp"}`;
- a sandbox's own API (processes, files): `ErrorResponse` = `{"error": <message>}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse


class BlaxelError(Exception):
    """A failure answered to the client; `status`, `code` and `message` are what it sees."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(BlaxelError):
    status = 400
    code = "VALIDATION_FAILED"


class Unauthorized(BlaxelError):
    status = 401
    code = "AUTHENTICATION_REQUIRED"


class Forbidden(BlaxelError):
    status = 403
    code = "UNAUTHORIZED"


class NotFound(BlaxelError):
    status = 404
    code = "NOT_FOUND"


class Conflict(BlaxelError):
    status = 409
    code = "CONFLICT"


class Unavailable(BlaxelError):
    status = 503
    code = "WORKLOAD_UNAVAILABLE"


def api_error_body(error: BlaxelError) -> dict[str, Any]:
    """The control plane's generic `Error` body."""
    return {"error": error.code, "code": error.status, "message": error.message}


def action_error_body(
    error: BlaxelError, workspace: str, sandbox_name: str | None
) -> dict[str, Any]:
    """The `SandboxError` body of a rejected sandbox creation."""
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "status_code": error.status,
        "step": "validate_and_prepare",
        "workspace": workspace,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if sandbox_name:
        body["sandbox_name"] = sandbox_name
    return body


def api_error(error: BlaxelError) -> JSONResponse:
    return JSONResponse(api_error_body(error), status_code=error.status)


def action_error(error: BlaxelError, workspace: str, sandbox_name: str | None) -> JSONResponse:
    return JSONResponse(action_error_body(error, workspace, sandbox_name), status_code=error.status)


def sandbox_api_error(error: BlaxelError) -> JSONResponse:
    """The sandbox API's `ErrorResponse` body: only the message."""
    return JSONResponse({"error": error.message}, status_code=error.status)


def fault_body(status: int, message: str = "injected fault") -> dict[str, Any]:
    """An injected failure every Blaxel SDK parser accepts (`Error`, `SandboxError`, `ErrorResponse`).

    For the fault injector in front of `/blaxel/...`: the Anthropic error shape would make the
    SDK's `SandboxError.from_dict` (which needs `code` and `message`) raise a KeyError.
    """
    return {"error": message, "code": status, "message": message, "status_code": status}
