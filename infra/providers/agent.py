"""The CMA agent: created once, updated by versions, archived on delete (no delete exists)."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.names import owner_of, refuse_foreign
from infra.providers.base import CmaProvider, CmaResource, OwnedProps

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_TOOLS: list[dict[str, Any]] = [{"type": "agent_toolset_20260401"}]
IMPORT_HINT = (
    "Set {name_key} to another name, or take it over with "
    "`pulumi config set cma:importAgentId {id}` (or scripts/import-stack)."
)


class AgentProps(OwnedProps):
    """Inputs of an agent."""

    name: str
    model: str = DEFAULT_MODEL
    system: str | None = None
    description: str | None = None
    tools: list[dict[str, Any]] = DEFAULT_TOOLS
    metadata: dict[str, str] = {}
    adopt_id: str | None = None  # an existing agent to take over (explicit import)


def agent_payload(p: AgentProps) -> dict[str, Any]:
    """The create / update body, marked with its owner (pure); `version` is added by update."""
    metadata = dict(p.metadata)
    if p.owner:
        metadata.update(p.owner.mark())
    body: dict[str, Any] = {
        "name": p.name,
        "model": p.model,
        "tools": [dict(t) for t in p.tools],
        "metadata": metadata,
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


def live_tools(live: dict[str, Any], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools as read back, reduced to the keys we set (the API adds its defaults)."""
    tools = live.get("tools")
    if not isinstance(tools, list):
        return wanted
    keys = set().union(*(t.keys() for t in wanted)) if wanted else {"type"}
    return [{k: v for k, v in t.items() if k in keys} for t in tools if isinstance(t, dict)]


def agent_outputs(p: AgentProps, live: dict[str, Any]) -> dict[str, Any]:
    """State: what the platform holds for each diffed field, the id and the version (pure)."""
    marks = set(p.owner.mark()) if p.owner else set()
    metadata = {k: v for k, v in (live.get("metadata") or {}).items() if k not in marks}
    found = owner_of(live.get("metadata"))
    return {
        **p.model_dump(),
        "name": live.get("name"),
        "model": live_model_id(live),
        "system": live.get("system"),
        "description": live.get("description"),
        "tools": live_tools(live, p.tools),
        "metadata": metadata,
        "owner": {"project": found.project, "stack": found.stack} if found else None,
        "agent_id": live["id"],
        "version": int(live["version"]),
    }


class AgentProvider(CmaProvider):
    """CRUD for `agent_…` through the Anthropic client."""

    props_model = AgentProps
    not_diffed = frozenset({"adopt_id", "name_key"})

    def create(self, props: dict[str, Any]) -> CreateResult:
        from infra.clients import anthropic as api

        creds = self.anthropic()
        p: AgentProps = self.validated(props)
        payload = agent_payload(p)
        if p.adopt_id:  # asked for explicitly: taken over whoever marked it
            live: dict[str, Any] | None = api.get_agent(creds, p.adopt_id)
        else:
            live = api.find_agent_by_name(creds, p.name)
            # Only our own (left by an earlier run that failed after creating it) is adopted.
            if live is not None and p.owner and owner_of(live.get("metadata")) != p.owner:
                hint = IMPORT_HINT.format(name_key=p.name_key or "the name", id=live["id"])
                raise refuse_foreign("agent", p.name, owner_of(live.get("metadata")), p.owner, hint)
        if live is None:
            live = api.create_agent(creds, payload)
        elif agent_outputs(p, live) != agent_outputs(p, {**live, **_as_live(payload)}):
            live = api.update_agent(creds, live["id"], int(live["version"]), payload)
        return CreateResult(live["id"], agent_outputs(p, live))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.clients import anthropic as api
        from infra.clients.errors import NotFound

        p: AgentProps = self.validated(props)
        try:
            live = api.get_agent(self.anthropic(), id_)
        except NotFound:
            return ReadResult("", {})
        outs = agent_outputs(p, live)
        return ReadResult(id_, outs, inputs={k: outs[k] for k in AgentProps.model_fields})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from infra.clients import anthropic as api

        creds = self.anthropic()
        p: AgentProps = self.validated(news)
        # The version to send is the live one: someone may have versioned it since.
        current = api.get_agent(creds, id_)
        live = api.update_agent(creds, id_, int(current["version"]), agent_payload(p))
        return UpdateResult(agent_outputs(p, live))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import anthropic as api

        api.archive_agent(self.anthropic(), id_)


def _as_live(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload in the shape the API reads back, to compare with a live agent (pure)."""
    return {**payload, "system": payload.get("system"), "description": payload.get("description")}


class Agent(CmaResource, module="cma", name="Agent"):
    """A CMA agent; `agent_id` and `version` (bumped by every update)."""

    provider_class = AgentProvider
    output_names = ("agent_id", "version")

    agent_id: pulumi.Output[str]
    version: pulumi.Output[int]
