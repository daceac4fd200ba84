"""The agent provider with full definitions, against the emulated CMA: no diff for an
unchanged agent the API enriched, refresh showing an out-of-band edit of a field, the next
update restoring the definition (a removed metadata key really removed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from emulator.server import EmulatorServer
from infra.agent_definition import create_payload, parse_agents
from infra.clients import anthropic as api
from infra.providers.agent import AgentProvider

OWNER = {"project": "cma-blaxel", "stack": "agents-test"}
LOOKUP = {
    "lookup_order": {
        "description": "Look up an order.",
        "input_schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    }
}


@pytest.fixture(scope="module")
def provider() -> Iterator[AgentProvider]:
    with EmulatorServer() as server:
        c = server.config
        made = AgentProvider()
        config = {
            "cma:anthropicBaseUrl": c.anthropic_base_url,
            "cma:anthropicApiKey": c.anthropic_api_key,
        }
        made.configure(ConfigureRequest(Config(config, "cma-blaxel")))
        yield made


def props(**overrides: Any) -> dict[str, Any]:
    """Provider inputs as the stack builds them: the definition's create payload, an owner."""
    definition = {
        "name": f"agent-{uuid.uuid4().hex[:8]}",
        "description": "Orders",
        "model": {"id": "claude-opus-4-8", "effort": "high"},
        "tools": [
            {"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]},
            {"type": "mcp_toolset", "mcp_server_name": "docs"},
            {"type": "custom", "name": "lookup_order"},
        ],
        "mcp_servers": [{"name": "docs", "url": "https://mcp.example.com"}],
        "skills": [{"type": "anthropic", "skill_id": "xlsx"}],
        "metadata": {"team": "orders"},
        **overrides,
    }
    (agent,) = parse_agents({"cma:agents": [definition]})
    payload = {k: v for k, v in create_payload(agent, LOOKUP).items() if v is not None}
    return {**payload, "owner": OWNER}


def test_an_unchanged_agent_refreshes_to_no_diff(provider: AgentProvider) -> None:
    inputs = props()
    created = provider.create(inputs)
    assert created.outs is not None
    assert provider.diff(created.id, created.outs, inputs).changes is False
    read = provider.read(created.id, created.outs)
    assert read.outs is not None
    assert provider.diff(created.id, read.outs, inputs).changes is False


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("tools", {"tools": [{"type": "agent_toolset_20260401"}], "mcp_servers": []}),
        ("skills", {"skills": []}),
        ("model", {"model": {"id": "claude-opus-4-8", "effort": "low"}}),
        ("metadata", {"metadata": {"added": "by hand"}}),
        ("description", {"description": "edited"}),
    ],
)
def test_refresh_shows_an_out_of_band_edit_and_update_restores_it(
    provider: AgentProvider, field: str, edit: dict[str, Any]
) -> None:
    inputs = props()
    created = provider.create(inputs)
    assert created.outs is not None
    api.update_agent(provider.anthropic(), created.id, created.outs["version"], edit)
    read = provider.read(created.id, created.outs)
    assert read.outs is not None and read.inputs is not None
    diff = provider.diff(created.id, read.outs, inputs)
    assert diff.changes is True and diff.replaces == []
    assert read.outs[field] != inputs[field]
    updated = provider.update(created.id, read.outs, inputs)
    assert updated.outs is not None
    assert updated.outs["version"] == read.outs["version"] + 1
    again = provider.read(created.id, dict(updated.outs))
    assert again.outs is not None
    assert provider.diff(created.id, again.outs, inputs).changes is False
    live = api.get_agent(provider.anthropic(), created.id)
    assert "added" not in live["metadata"]


def test_state_of_the_older_agent_inputs_shows_no_diff(provider: AgentProvider) -> None:
    olds = {
        "name": "a",
        "model": "claude-sonnet-4-6",
        "system": None,
        "description": None,
        "tools": [{"type": "agent_toolset_20260401"}],
        "metadata": {},
        "owner": OWNER,
    }
    news = {"name": "a", "owner": OWNER}
    assert provider.diff("agent_1", olds, news).changes is False
