"""Blaxel credentials: `X-Blaxel-Authorization: Bearer <key>` (or `Authorization`) and a workspace."""

from __future__ import annotations

from starlette.datastructures import Headers

from emulator.blaxel.exceptions import Forbidden, Unauthorized
from emulator.config import EmulatorConfig


def authenticate(headers: Headers, config: EmulatorConfig) -> None:
    """Raise Blaxel's 401/403 unless the request carries this workspace's API key."""
    header = headers.get("x-blaxel-authorization") or headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authentication required: send X-Blaxel-Authorization: Bearer <key>")
    if token.strip() != config.blaxel_api_key:
        raise Forbidden("Authorization failed", code="UNAUTHORIZED")
    workspace = headers.get("x-blaxel-workspace")
    if not workspace:
        raise Unauthorized(
            "Workspace is required: send X-Blaxel-Workspace", code="WORKSPACE_REQUIRED"
        )
    if workspace != config.blaxel_workspace:
        raise Forbidden(f"No access to workspace '{workspace}'", code="UNAUTHORIZED_WORKSPACE")
