"""The CMA agent: created once, updated by versions, archived on delete (no delete exists)."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from infra.clients import anthropic as api
from infra.clients.errors import NotFound
from infra.providers.base import (
    ANTHROPIC_CREDENTIAL_FIELDS,
    PortableProvider,
    Props,
    anthropic_credentials,
    check_with,
    field_diff,
    pick,
    with_defaults,
    with_secret_outputs,
)

FIELDS = ("name", "model", "system", "description", "tools", "metadata")
DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_TOOLS: list[dict[str, Any]] = [{"type": "agent_toolset_20260401"}]


class AgentProps(Props):
    """Inputs of an agent."""

    name: str
    model: str = DEFAULT_MODEL
    system: str | None = None
    description: str | None = None
    tools: list[dict[str, Any]] = DEFAULT_TOOLS
    metadata: dict[str, str] = {}
    adopt_id: str | None = None  # an existing agent to take over instead of creating


def agent_payload(props: dict[str, Any]) -> dict[str, Any]:
    """The create / update body (pure); `version` is added by the update call."""
    p = AgentProps.model_validate(props)
    body: dict[str, Any] = {
        "name": p.name,
        "model": p.model,
        "tools": [dict(t) for t in p.tools],
        "metadata": dict(p.metadata),
    }
    if p.system is not None:
        body["system"] = p.system
    if p.description is not None:
        body["description"] = p.description
    return body


def live_model_id(live: dict[str, Any]) -> str | None:
    """The model id of an agent as read back (a model config object or a plain string)."""
    model = live.get("model")
    return model.get("id") if isinstance(model, dict) else model


def agent_outputs(props: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """State: desired fields, credentials (secret), the id and the live version."""
    return {
        **pick(props, ANTHROPIC_CREDENTIAL_FIELDS),
        **pick(AgentProps.model_validate(props).model_dump(), FIELDS),
        "agent_id": live["id"],
        "version": int(live["version"]),
    }


def agent_read_outputs(props: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """State after a refresh: what the platform holds, so drift shows in the next diff."""
    outs = agent_outputs(props, live)
    outs.update(
        name=live.get("name"),
        model=live_model_id(live),
        system=live.get("system"),
        description=live.get("description"),
        metadata=dict(live.get("metadata") or {}),
    )
    return outs


class AgentProvider(PortableProvider):
    """CRUD for `agent_…` through the Anthropic client."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return check_with(AgentProps, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        wanted = {**news, **pick(with_defaults(AgentProps, news), FIELDS)}
        return field_diff(olds, wanted, (*FIELDS, *ANTHROPIC_CREDENTIAL_FIELDS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        creds = anthropic_credentials(props)
        payload = agent_payload(props)
        adopt_id = AgentProps.model_validate(props).adopt_id
        # Adopt the one asked for, or one left by an earlier run that failed after creating it.
        if adopt_id:
            live: dict[str, Any] | None = api.get_agent(creds, adopt_id)
        else:
            live = api.find_agent_by_name(creds, payload["name"])
        if live is None:
            live = api.create_agent(creds, payload)
        else:
            live = api.update_agent(creds, live["id"], int(live["version"]), payload)
        return CreateResult(live["id"], agent_outputs(props, live))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            live = api.get_agent(anthropic_credentials(props), id_)
        except NotFound:
            return ReadResult("", {})
        return ReadResult(id_, agent_read_outputs(props, live))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        creds = anthropic_credentials(news)
        # The version to send is the live one: someone may have versioned it since.
        current = api.get_agent(creds, id_)
        live = api.update_agent(creds, id_, int(current["version"]), agent_payload(news))
        return UpdateResult(agent_outputs(news, live))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        api.archive_agent(anthropic_credentials(props), id_)


class Agent(Resource):
    """A CMA agent; `agent_id` and `version` (bumped by every update)."""

    agent_id: pulumi.Output[str]
    version: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            AgentProvider(),
            resource_name,
            {**props, "agent_id": None, "version": None},
            with_secret_outputs(opts, "anthropic_api_key"),
        )
