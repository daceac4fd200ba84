"""The CMA agent: created once, updated by versions, archived on delete (no delete exists)."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.agent_definition import declared_or_live, drift
from infra.names import owner_of, refuse_foreign
from infra.providers.base import CmaProvider, CmaResource, OwnedProps

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_TOOLS: list[dict[str, Any]] = [{"type": "agent_toolset_20260401"}]
IMPORT_HINT = (
    "Set {name_key} to another name, or take it over with "
    "`pulumi config set cma:importAgentId {id}` (or scripts/import-stack)."
)


class AgentProps(OwnedProps):
    """Inputs of an agent: the fields of `agents.create`, as `infra.agent_definition` builds
    them (custom tools already resolved to their name, description and input schema)."""

    name: str
    model: str | dict[str, Any] = DEFAULT_MODEL
    system: str | None = None
    description: str | None = None
    tools: list[dict[str, Any]] = DEFAULT_TOOLS
    mcp_servers: list[dict[str, Any]] = []
    skills: list[dict[str, Any]] = []
    metadata: dict[str, str] = {}
    execution_identity: dict[str, Any] | None = None
    multiagent: dict[str, Any] | None = None
    adopt_id: str | None = None  # an existing agent to take over (explicit import)


# Fields newer than the first version of this provider (absent from older states).
ADDED_FIELDS = ("mcp_servers", "skills", "execution_identity", "multiagent")
# Create takes these only when set (omitted = the API's default); update sends them always.
_OPTIONAL = ("system", "description", "execution_identity", "multiagent")


def _marked(p: AgentProps) -> dict[str, str]:
    metadata = dict(p.metadata)
    if p.owner:
        metadata.update(p.owner.mark())
    return metadata


def agent_payload(p: AgentProps) -> dict[str, Any]:
    """The create body, marked with its owner (pure)."""
    body: dict[str, Any] = {
        "name": p.name,
        "model": p.model,
        "tools": [dict(t) for t in p.tools],
        "mcp_servers": [dict(s) for s in p.mcp_servers],
        "skills": [dict(s) for s in p.skills],
        "metadata": _marked(p),
    }
    body.update({k: getattr(p, k) for k in _OPTIONAL if getattr(p, k) is not None})
    return body


def agent_update_payload(p: AgentProps, live: dict[str, Any]) -> dict[str, Any]:
    """The update body but `version` (pure): every field, as the API replaces them whole, and
    metadata as a patch where a key the live agent has but the definition lacks is null."""
    body = {**agent_payload(p), **{k: getattr(p, k) for k in _OPTIONAL}}
    removed = dict.fromkeys(k for k in live.get("metadata") or {} if k not in body["metadata"])
    body["metadata"] = {**removed, **body["metadata"]}
    return body


def live_model_id(live: dict[str, Any]) -> str | None:
    """The model id of an agent as read back (a model config object or a plain string)."""
    model = live.get("model")
    return model.get("id") if isinstance(model, dict) else model


def agent_outputs(p: AgentProps, live: dict[str, Any]) -> dict[str, Any]:
    """State (pure): per diffed field the input where the platform agrees with it (it fills in
    tool defaults and reorders), else what it holds; the id and the version."""
    marks = set(p.owner.mark()) if p.owner else set()
    fields = declared_or_live(agent_payload(p), live)
    fields["metadata"] = {k: v for k, v in (fields["metadata"] or {}).items() if k not in marks}
    found = owner_of(live.get("metadata"))
    return {
        **p.model_dump(),
        **fields,
        "owner": {"project": found.project, "stack": found.stack} if found else None,
        "agent_id": live["id"],
        "version": int(live["version"]),
    }


class AgentProvider(CmaProvider):
    """CRUD for `agent_…` through the Anthropic client."""

    props_model = AgentProps
    not_diffed = frozenset({"adopt_id", "name_key"})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        # State written before these fields existed holds the agent with their defaults.
        defaults = {f: AgentProps.model_fields[f].default for f in ADDED_FIELDS}
        return super().diff(id_, {**defaults, **olds}, news)

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
        elif drift(payload, live):
            body = agent_update_payload(p, live)
            live = api.update_agent(creds, live["id"], int(live["version"]), body)
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
        body = agent_update_payload(p, current)
        live = api.update_agent(creds, id_, int(current["version"]), body)
        return UpdateResult(agent_outputs(p, live))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import anthropic as api

        api.archive_agent(self.anthropic(), id_)


class Agent(CmaResource, module="cma", name="Agent"):
    """A CMA agent; `agent_id` and `version` (bumped by every update)."""

    provider_class = AgentProvider
    output_names = ("agent_id", "version")

    agent_id: pulumi.Output[str]
    version: pulumi.Output[int]
