"""Emulated Anthropic platform: the CMA API under /v1, the Console stand-in, webhooks.

`AnthropicBackend` holds the state (`models.py`); `anthropic_routes(backend)` are served at
the server root, `console_routes(backend)` under `/_console`.
"""

from __future__ import annotations

from starlette.routing import Route

from emulator.anthropic.models import AnthropicBackend
from emulator.anthropic.routes import agent_routes, environment_routes, not_found_route, work_routes
from emulator.anthropic.session_routes import session_routes
from emulator.anthropic.webhook_routes import console_routes, organization_webhook_routes

__all__ = ["AnthropicBackend", "anthropic_routes", "console_routes"]


def anthropic_routes(backend: AnthropicBackend) -> list[Route]:
    """Every `/v1/...` route of the emulated API."""
    return [
        *work_routes(backend),  # before the environment routes: `/work/...` is more specific
        *environment_routes(backend),
        *agent_routes(backend),
        *session_routes(backend),
        *organization_webhook_routes(backend),
        not_found_route(backend),  # last: any other /v1 path answers in Anthropic's shape
    ]
