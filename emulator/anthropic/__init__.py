"""Emulated Anthropic platform: the CMA API under /v1, the Console stand-in, webhooks.

`AnthropicBackend` holds the state (`models.py`); `anthropic_routes(backend)` are served at
the server root, `console_routes(backend)` under `/_console`.

Credentials: the config's API key (`x-api-key` or `Authorization: Bearer`), environment keys
minted by `POST /_console/environments/{id}/keys`, and each polled work item's sessions token.

For tests, the backend shows its state: `environments`, `agents`, `sessions`, `work_items`,
`webhook_endpoints`, `deliveries` / `deliveries_for(session_id)` (attempts, `delivered`,
`forced`), `claims` / `workers_for(session_id)` (who polled a session's work),
`live_work_for(session_id)`, `live_resources()`, `clock.advance(seconds)` (leases, webhook
timestamps), `webhook_retry_delays`, `close_streams()`, `reset()`.
The scripted agent's directives (`bash: …`, `write <path>: …`, `say: …`) are in `agent_script`.
"""

from __future__ import annotations

from starlette.routing import Route

from emulator.anthropic.memory_routes import memory_store_routes
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
        *memory_store_routes(backend),
        *organization_webhook_routes(backend),
        not_found_route(backend),  # last: any other /v1 path answers in Anthropic's shape
    ]
