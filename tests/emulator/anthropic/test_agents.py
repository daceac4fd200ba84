"""Agents through the SDK: versioned updates, stale versions refused, archive instead of delete."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsAgent

from tests.emulator.anthropic.helpers import agent, strict


def test_create_fills_in_the_platform_defaults(client: anthropic.Anthropic) -> None:
    created = agent(client)
    strict(BetaManagedAgentsAgent, created)
    assert created.id.startswith("agent_")
    assert created.version == 1
    assert created.model.id == "claude-sonnet-4-6"
    toolset = created.tools[0]
    assert toolset.type == "agent_toolset_20260401"
    assert toolset.default_config.enabled is True
    assert created.execution_identity.type == "service_account"


def test_update_naming_the_current_version_returns_the_next(client: anthropic.Anthropic) -> None:
    created = agent(client)
    updated = client.beta.agents.update(created.id, version=1, system="Be terse.")
    assert (updated.version, updated.system) == (2, "Be terse.")
    assert client.beta.agents.retrieve(created.id).version == 2
    assert client.beta.agents.retrieve(created.id, version=1).system is None
    assert [v.version for v in client.beta.agents.versions.list(created.id)] == [2, 1]


def test_update_naming_a_stale_version_is_refused(client: anthropic.Anthropic) -> None:
    created = agent(client)
    client.beta.agents.update(created.id, version=1, name="renamed")
    with pytest.raises(anthropic.ConflictError) as caught:
        client.beta.agents.update(created.id, version=1, name="again")
    assert caught.value.status_code == 409
    assert caught.value.api_message == (
        f"Agent {created.id} is at version 2, but the update was based on version 1; "
        "retrieve the agent and retry"
    )


def test_an_update_that_changes_nothing_keeps_the_version(client: anthropic.Anthropic) -> None:
    created = agent(client)
    same = client.beta.agents.update(created.id, version=1, name=created.name)
    assert same.version == 1


def test_archive_hides_the_agent_and_refuses_updates(client: anthropic.Anthropic) -> None:
    created = agent(client)
    archived = client.beta.agents.archive(created.id)
    assert archived.archived_at is not None
    assert client.beta.agents.list().data == []
    assert [a.id for a in client.beta.agents.list(include_archived=True)] == [created.id]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.agents.update(created.id, name="late")
    assert caught.value.api_message == f"Agent {created.id} is archived and cannot be updated"


def test_an_unknown_agent_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.beta.agents.retrieve("agent_missing")
    assert caught.value.api_message == "Agent agent_missing not found"


def test_mcp_toolsets_default_to_always_ask_and_effort_reads_back_as_an_object(
    client: anthropic.Anthropic,
) -> None:
    created = client.beta.agents.create(
        name="mcp",
        model={"id": "claude-opus-4-8", "effort": "high"},
        tools=[{"type": "mcp_toolset", "mcp_server_name": "docs"}],
        mcp_servers=[{"type": "url", "name": "docs", "url": "https://mcp.example.com"}],
    )
    strict(BetaManagedAgentsAgent, created)
    toolset = created.tools[0]
    assert toolset.type == "mcp_toolset"
    assert toolset.default_config.permission_policy is not None
    assert toolset.default_config.permission_policy.type == "always_ask"
    assert created.model.effort is not None and created.model.effort.type == "high"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"mcp_servers": [{"type": "url", "name": "docs", "url": "https://x"}]},
            "mcp_servers: not referenced by any mcp_toolset: ['docs']",
        ),
        (
            {"tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}]},
            "tools.mcp_server_name: no server ['docs'] in mcp_servers",
        ),
        (
            {
                "tools": [
                    {
                        "type": "custom",
                        "name": "no spaces",
                        "description": "d",
                        "input_schema": {"type": "object"},
                    }
                ]
            },
            "tools.name: 1-128 characters; letters, digits, underscores, and hyphens",
        ),
        (
            {
                "tools": [
                    {"type": "custom", "name": "t", "description": "d", "input_schema": {"a": 1}}
                ]
            },
            "tools.input_schema: must be a JSON schema of type 'object'",
        ),
    ],
)
def test_tools_and_servers_the_api_refuses(
    client: anthropic.Anthropic, fields: dict, message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.agents.create(name="bad", model="claude-sonnet-4-6", **fields)
    assert caught.value.status_code == 400
    assert caught.value.api_message == message


def test_a_multiagent_roster_reads_back_resolved_to_agent_versions(
    client: anthropic.Anthropic,
) -> None:
    helper = agent(client, "helper")
    client.beta.agents.update(helper.id, version=1, system="v2")
    created = client.beta.agents.create(
        name="lead",
        model="claude-sonnet-4-6",
        multiagent={"type": "coordinator", "agents": [{"type": "self"}, helper.id]},
    )
    strict(BetaManagedAgentsAgent, created)
    assert created.multiagent is not None and created.multiagent.type == "coordinator"
    assert [(a.id, a.version) for a in created.multiagent.agents] == [  # type: ignore[union-attr]
        (created.id, 1),
        (helper.id, 2),
    ]


def test_a_multiagent_update_merges_members_and_null_restores_a_default(
    client: anthropic.Anthropic,
) -> None:
    created = client.beta.agents.create(
        name="lead",
        model="claude-sonnet-4-6",
        multiagent={"type": "multiagent_20261001", "workflows": {"type": "disabled"}},
    )
    strict(BetaManagedAgentsAgent, created)
    merged = client.beta.agents.update(
        created.id,
        version=1,
        multiagent={"type": "multiagent_20261001", "advisor": {"type": "enabled", "model": "m"}},
    )
    assert merged.multiagent is not None and merged.multiagent.type == "multiagent_20261001"
    assert (merged.multiagent.advisor.type, merged.multiagent.workflows.type) == (
        "enabled",
        "disabled",
    )
    reset = client.beta.agents.update(
        created.id, version=2, multiagent={"type": "multiagent_20261001", "workflows": None}
    )
    assert reset.multiagent is not None and reset.multiagent.type == "multiagent_20261001"
    assert (reset.multiagent.advisor.type, reset.multiagent.workflows.type) == (
        "enabled",
        "enabled",
    )
