"""Anthropic API calls the stack makes (environments, agents, organization webhooks).

Everything goes through the official SDK; SDK failures become `infra.clients.errors`
exceptions here and nowhere else. Results are plain JSON-able dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anthropic

from infra.clients.errors import Conflict, NotFound, error_for_status, with_retries

T = TypeVar("T")
# The SDKs log every request at INFO; in `pulumi up` that drowns the resource diagnostics.
for _noisy in ("httpx", "httpx2"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

SESSION_EVENTS = ["session.status_run_started"]


@dataclass(frozen=True)
class AnthropicCredentials:
    """Where the Anthropic API is and the key to call it with (never logged)."""

    base_url: str
    api_key: str

    def __repr__(self) -> str:
        return f"AnthropicCredentials(base_url={self.base_url!r}, api_key=***)"


def _sdk(creds: AnthropicCredentials) -> anthropic.Anthropic:
    # Retries are ours (with_retries), so the SDK's own are off: one policy, countable tries.
    return anthropic.Anthropic(
        api_key=creds.api_key, base_url=creds.base_url, max_retries=0, timeout=60.0
    )


@contextmanager
def _mapped() -> Iterator[None]:
    """Translate SDK exceptions into the client error tree."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        raise error_for_status(exc.status_code, _message(exc)) from exc
    except anthropic.APIConnectionError as exc:  # includes timeouts
        raise error_for_status(None, f"cannot reach the Anthropic API: {exc}") from exc


def _message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    detail = error.get("message") if isinstance(error, dict) else None
    return f"Anthropic API {exc.status_code}: {detail or exc.message}"


def _call(creds: AnthropicCredentials, fn: Callable[[anthropic.Anthropic], T]) -> T:
    def once() -> T:
        # Closed after each call: an unclosed client leaves its connection to the GC.
        with _mapped(), _sdk(creds) as sdk:
            return fn(sdk)

    return with_retries(once)


def _dump(model: Any) -> dict[str, Any]:
    return cast(dict[str, Any], model.model_dump(mode="json"))


# Environments


def find_environment_by_name(creds: AnthropicCredentials, name: str) -> dict[str, Any] | None:
    """The live (not archived) self-hosted environment called `name`, if any."""

    def find(sdk: anthropic.Anthropic) -> dict[str, Any] | None:
        for env in sdk.beta.environments.list(limit=100):
            if env.name == name and env.archived_at is None and env.config.type == "self_hosted":
                return _dump(env)
        return None

    return _call(creds, find)


def create_environment(creds: AnthropicCredentials, payload: dict[str, Any]) -> dict[str, Any]:
    """Create an environment from a payload of `environment_payload`."""
    return _call(creds, lambda sdk: _dump(sdk.beta.environments.create(**payload)))


def get_environment(creds: AnthropicCredentials, environment_id: str) -> dict[str, Any]:
    """Read an environment; an archived one counts as gone (NotFound)."""
    env = _call(creds, lambda sdk: _dump(sdk.beta.environments.retrieve(environment_id)))
    if env.get("archived_at"):
        raise NotFound(f"environment {environment_id} is archived", 404)
    return env


def update_environment(
    creds: AnthropicCredentials, environment_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """Update name, description and metadata in place (the config type cannot change)."""
    body = {k: v for k, v in payload.items() if k != "config"}
    return _call(creds, lambda sdk: _dump(sdk.beta.environments.update(environment_id, **body)))


def delete_environment(creds: AnthropicCredentials, environment_id: str) -> None:
    """Delete; archive when sessions still reference it; already gone is success."""
    try:
        _call(creds, lambda sdk: sdk.beta.environments.delete(environment_id))
    except NotFound:
        return
    except Conflict:
        archive_environment(creds, environment_id)


def archive_environment(creds: AnthropicCredentials, environment_id: str) -> None:
    """Archive an environment; already gone or archived is success."""
    try:
        _call(creds, lambda sdk: sdk.beta.environments.archive(environment_id))
    except (NotFound, Conflict):
        return


# Agents


def find_agent_by_name(creds: AnthropicCredentials, name: str) -> dict[str, Any] | None:
    """The live (not archived) agent called `name`, if any."""

    def find(sdk: anthropic.Anthropic) -> dict[str, Any] | None:
        for agent in sdk.beta.agents.list(limit=100):
            if agent.name == name and agent.archived_at is None:
                return _dump(agent)
        return None

    return _call(creds, find)


def create_agent(creds: AnthropicCredentials, payload: dict[str, Any]) -> dict[str, Any]:
    """Create an agent from a payload of `agent_payload`."""
    return _call(creds, lambda sdk: _dump(sdk.beta.agents.create(**payload)))


def get_agent(creds: AnthropicCredentials, agent_id: str) -> dict[str, Any]:
    """Read the latest version of an agent; an archived one counts as gone."""
    agent = _call(creds, lambda sdk: _dump(sdk.beta.agents.retrieve(agent_id)))
    if agent.get("archived_at"):
        raise NotFound(f"agent {agent_id} is archived", 404)
    return agent


def update_agent(
    creds: AnthropicCredentials, agent_id: str, version: int, payload: dict[str, Any]
) -> dict[str, Any]:
    """Versioned update: `version` is the one we last saw; a new version comes back."""
    return _call(
        creds, lambda sdk: _dump(sdk.beta.agents.update(agent_id, version=version, **payload))
    )


def archive_agent(creds: AnthropicCredentials, agent_id: str) -> None:
    """Agents cannot be deleted, only archived; already gone or archived is success."""
    try:
        _call(creds, lambda sdk: sdk.beta.agents.archive(agent_id))
    except (NotFound, Conflict):
        return


# Organization webhook endpoints (the SDK's only endpoint-management API)


def find_webhook_by_url(creds: AnthropicCredentials, url: str) -> dict[str, Any] | None:
    """The endpoint registered for `url`, if any (without its secret: no read returns it)."""

    def find(sdk: anthropic.Anthropic) -> dict[str, Any] | None:
        for endpoint in sdk.beta.organization.webhooks.list(limit=100):
            if endpoint.url == url:
                return _dump(endpoint)
        return None

    return _call(creds, find)


def create_webhook(creds: AnthropicCredentials, payload: dict[str, Any]) -> dict[str, Any]:
    """Create an endpoint; the answer carries `signing_secret`, the only time it is shown."""
    return _call(creds, lambda sdk: _dump(sdk.beta.organization.webhooks.create(**payload)))


def get_webhook(creds: AnthropicCredentials, endpoint_id: str) -> dict[str, Any]:
    """Read an endpoint (no secret)."""
    return _call(creds, lambda sdk: _dump(sdk.beta.organization.webhooks.retrieve(endpoint_id)))


def update_webhook(
    creds: AnthropicCredentials, endpoint_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """Change an endpoint's URL, events or label in place."""
    return _call(
        creds, lambda sdk: _dump(sdk.beta.organization.webhooks.update(endpoint_id, **payload))
    )


def regenerate_webhook_secret(creds: AnthropicCredentials, endpoint_id: str) -> str:
    """A new signing secret for an endpoint (how an adopted endpoint gets one we know)."""
    result = _call(
        creds, lambda sdk: sdk.beta.organization.webhooks.regenerate_signing_secret(endpoint_id)
    )
    return str(result.signing_secret)


def delete_webhook(creds: AnthropicCredentials, endpoint_id: str) -> None:
    """Delete an endpoint; already gone is success."""
    try:
        _call(creds, lambda sdk: sdk.beta.organization.webhooks.delete(endpoint_id))
    except NotFound:
        return
