"""Anthropic's error shape: `{"type": "error", "error": {"type", "message", "details"?}}`.

    AnthropicAPIError                 (any status; rendered by `error_response`)
    ├── InvalidRequestError           400 invalid_request_error
    ├── AuthenticationError           401 authentication_error
    ├── PermissionDeniedError         403 permission_error
    ├── NotFoundError                 404 not_found_error
    ├── ConflictError                 409 conflict_error
    └── PreconditionFailedError       412 invalid_request_error (+ details.error_code)

`details.error_code` is what the SDK maps onto its specific classes (e.g. 412 +
`heartbeat_precondition_failed` → `BetaHeartbeatPreconditionFailedError`).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class AnthropicAPIError(Exception):
    """An API error with the status, `error.type` and message Anthropic would answer."""

    status = 500
    error_type = "api_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"type": "error", "error": error}


class InvalidRequestError(AnthropicAPIError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationError(AnthropicAPIError):
    status = 401
    error_type = "authentication_error"


class PermissionDeniedError(AnthropicAPIError):
    status = 403
    error_type = "permission_error"


class NotFoundError(AnthropicAPIError):
    status = 404
    error_type = "not_found_error"


class ConflictError(AnthropicAPIError):
    status = 409
    error_type = "conflict_error"


class PreconditionFailedError(AnthropicAPIError):
    status = 412
    error_type = "invalid_request_error"


def error_response(exc: AnthropicAPIError, request_id: str) -> JSONResponse:
    """The HTTP response for `exc`, with the `request-id` and `x-should-retry` headers the SDK reads.

    Without `x-should-retry: false` the SDK would retry a 409 (stale version, stopped work).
    """
    retry = exc.status >= 500 or exc.status in (408, 429)
    headers = {"request-id": request_id, "x-should-retry": "true" if retry else "false"}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
