"""Fixtures for the orchestrator's tests: settings, signed deliveries, a dead loopback port."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from orchestrator_app.settings import Settings


def dead_loopback_url(path: str = "") -> str:
    """A loopback URL nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def run_started(session_id: str, event_id: str = "wevt_1") -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "event",
        "created_at": "2026-11-27T10:00:00Z",
        "data": {
            "type": "session.status_run_started",
            "id": session_id,
            "organization_id": "org_1",
            "workspace_id": "wrkspc_1",
        },
    }


SignFn = Callable[..., tuple[bytes, dict[str, str]]]


def after_handovers(services: Any) -> Any:
    """The app's services once its dispatch loop has run every callback handed to it so far
    (its callbacks run in order, so a no-op coroutine run there comes after them)."""

    async def nothing() -> None:
        return None

    asyncio.run_coroutine_threadsafe(nothing(), services.dispatch.loop).result()
    return services


def make_signer(secret: str) -> SignFn:
    """sign(payload, webhook_id=..., timestamp=...) -> (body, headers) as a sender would send."""

    def sign(payload: Any, *, webhook_id: str | None = None, timestamp: float | None = None):
        body = payload if isinstance(payload, str) else json.dumps(payload)
        msg_id = webhook_id or "msg_" + secrets.token_hex(8)
        ts = time.time() if timestamp is None else timestamp
        from datetime import UTC, datetime

        signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(ts)),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
        return body.encode(), headers

    return sign


@pytest.fixture(autouse=True)
def _no_orch_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Settings()` reads ORCH_* (and PORT): a developer's shell must not change a test."""
    import os

    for name in [n for n in os.environ if n.startswith("ORCH_") or n == "PORT"]:
        monkeypatch.delenv(name)


@pytest.fixture
def signing_secret() -> str:
    return new_signing_secret()


@pytest.fixture
def sign(signing_secret: str) -> SignFn:
    return make_signer(signing_secret)


@pytest.fixture
def offline_settings(signing_secret: str) -> Settings:
    """Complete settings whose APIs are dead loopback ports (nothing is ever reached)."""
    return Settings.model_validate(
        {
            "environment_id": "env_test",
            "environment_key": "sk-ant-oat01-unit-test-environment-key",
            "webhook_signing_secret": signing_secret,
            "anthropic_base_url": dead_loopback_url(),
            "blaxel_base_url": dead_loopback_url("/blaxel/v0"),
            "blaxel_api_key": "bl-unit-test-api-key",
            "blaxel_workspace": "unit",
            "worker_image": "cma-worker:test",
            "recovery_poll_seconds": 0,
        }
    )
