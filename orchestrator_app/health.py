"""`GET /health` (the process answers) and `GET /ready` (configured, and both APIs accept us).

`/ready` is what `pulumi up` waits for: to a caller with the status token it names every
problem in words, e.g. "environment key not set (ORCH_ENVIRONMENT_KEY)" or "Blaxel API
unreachable at http://…", so the operator knows the next step without reading logs; to anyone
else (it is on the public preview URL) it says only ready or not ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
from starlette.requests import Request
from starlette.responses import JSONResponse

from orchestrator_app.errors import BlaxelError
from orchestrator_app.status import authorized

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0


async def anthropic_problem(
    client: anthropic.AsyncAnthropic, environment_id: str, url: str
) -> str | None:
    """None when the environment key can read its environment's work queue, else the problem."""
    probe = client.with_options(max_retries=0, timeout=PROBE_TIMEOUT_SECONDS)
    try:
        await probe.beta.environments.work.list(environment_id, limit=1)
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError):
        return "environment key rejected by the Anthropic API"
    except anthropic.NotFoundError:
        return f"environment {environment_id} not found by the Anthropic API"
    except anthropic.APIConnectionError:
        return f"Anthropic API unreachable at {url}"
    except anthropic.APIStatusError as exc:
        return f"Anthropic API answered {exc.status_code}"
    return None


async def blaxel_problem(probe: Callable[[], Awaitable[None]], url: str) -> str | None:
    """None when the Blaxel control plane accepts our key, else the problem."""
    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"Blaxel API unreachable at {url} (no answer in {PROBE_TIMEOUT_SECONDS:g}s)"
    except BlaxelError as exc:
        if exc.status in (401, 403):
            return "Blaxel API key or workspace rejected by the Blaxel API"
        if exc.status is None:
            return f"Blaxel API unreachable at {url}"
        return f"Blaxel API answered {exc.status}"
    return None


async def health(request: Request) -> JSONResponse:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


async def api_problems(services: Any) -> list[str]:
    """What each configured API says about our credentials (run on the dispatch loop: the
    SDK clients probed belong to it)."""
    settings = services.settings
    probes = []
    if settings.environment_id and settings.environment_key:
        probes.append(
            anthropic_problem(services.anthropic, settings.environment_id, settings.anthropic_url)
        )
    if settings.blaxel_api_key and settings.blaxel_workspace:
        probes.append(blaxel_problem(services.sandboxes.probe, settings.blaxel_url))
    return [p for p in await asyncio.gather(*probes) if p]


async def ready(request: Request) -> JSONResponse:
    """Settings complete and both APIs reachable with our credentials; else 503 and the problems."""
    services = request.state.services
    settings = services.settings
    problems = settings.missing() + await services.dispatch.run(api_problems(services))
    details = authorized(request, settings)
    if problems:
        log.info("not ready", extra={"problems": problems})
        body = {"status": "not_ready", **({"problems": problems} if details else {})}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", **({"problems": []} if details else {})})
