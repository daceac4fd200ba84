"""Who is calling, and what each credential may touch.

Three credentials exist: the API key (everything but the work queue's worker
calls), an environment key (minted in the Console; that environment's queue and
its sessions) and a work item's sessions token (that one item's lifecycle and
that one session, nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emulator.anthropic.exceptions import AuthenticationError, PermissionDeniedError

API_KEY = "api_key"
ENVIRONMENT_KEY = "environment_key"
SESSIONS_TOKEN = "sessions_token"


@dataclass(frozen=True)
class Principal:
    """The resolved caller; the ids say what an environment key or sessions token is bound to."""

    kind: str
    environment_id: str | None = None
    work_id: str | None = None
    session_id: str | None = None


def credential_from_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(header name, credential) from `x-api-key` or `Authorization: Bearer`; 401 when absent."""
    api_key = headers.get("x-api-key")
    if api_key:
        return "x-api-key", api_key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "authorization", token.strip()
    raise AuthenticationError("x-api-key header is required")


def require_api_key(principal: Principal) -> None:
    if principal.kind != API_KEY:
        raise PermissionDeniedError(
            "This endpoint requires an API key; the credential given is not one"
        )


def require_environment_key(principal: Principal, environment_id: str) -> None:
    """The environment key of `environment_id`, and nothing else (not even the API key)."""
    if principal.kind != ENVIRONMENT_KEY:
        raise PermissionDeniedError("This endpoint requires the environment key as a bearer token")
    if principal.environment_id != environment_id:
        raise PermissionDeniedError(
            f"The environment key is not valid for environment {environment_id}"
        )


def require_key_for_environment(principal: Principal, environment_id: str) -> None:
    """The API key or the environment's own key."""
    if principal.kind == API_KEY:
        return
    require_environment_key(principal, environment_id)


def require_work_access(
    principal: Principal, environment_id: str, work_id: str, *, api_key_ok: bool
) -> None:
    """The environment key, the item's own sessions token, or (where allowed) the API key."""
    if principal.kind == SESSIONS_TOKEN:
        if principal.work_id != work_id:
            raise PermissionDeniedError(f"The sessions token is not valid for work item {work_id}")
        return
    if principal.kind == API_KEY and api_key_ok:
        return
    require_environment_key(principal, environment_id)


def require_session_access(principal: Principal, environment_id: str, session_id: str) -> None:
    """The API key, the session's environment key, or the sessions token of its work item."""
    if principal.kind == API_KEY:
        return
    if principal.kind == SESSIONS_TOKEN:
        if principal.session_id != session_id:
            raise PermissionDeniedError(f"The sessions token is not valid for session {session_id}")
        return
    require_environment_key(principal, environment_id)
