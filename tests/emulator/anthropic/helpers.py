"""Builders shared by the Anthropic emulator tests."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import anthropic
from anthropic.types.beta import BetaEnvironment, BetaManagedAgentsAgent, BetaManagedAgentsSession
from pydantic import BaseModel


def wait_until(condition: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    """Poll `condition` until it is truthy (for work the server does in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def strict(model: type[BaseModel], parsed: BaseModel) -> BaseModel:
    """Re-validate an SDK object strictly: the SDK builds models leniently, this does not."""
    return model.model_validate(parsed.model_dump(mode="json", exclude_unset=True))


def self_hosted_environment(client: anthropic.Anthropic, name: str = "workers") -> BetaEnvironment:
    return client.beta.environments.create(name=name, config={"type": "self_hosted"})


def agent(client: anthropic.Anthropic, name: str = "coder") -> BetaManagedAgentsAgent:
    return client.beta.agents.create(
        name=name, model="claude-sonnet-4-6", tools=[{"type": "agent_toolset_20260401"}]
    )


def session(
    client: anthropic.Anthropic, environment_id: str, agent_id: str, message: str | None = None
) -> BetaManagedAgentsSession:
    initial = (
        [{"type": "user.message", "content": [{"type": "text", "text": message}]}]
        if message
        else []
    )
    return client.beta.sessions.create(
        agent=agent_id,
        environment_id=environment_id,
        initial_events=initial,  # type: ignore[arg-type]
    )


def sessions_token(secret: str) -> str:
    """The bearer inside a work item's `secret` (URL-safe base64 JSON, padding optional)."""
    payload = json.loads(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))
    return str(payload["sessions_token"])
