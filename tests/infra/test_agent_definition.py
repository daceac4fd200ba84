"""Agent definitions: config validation naming paths, payloads, and drift against a read-back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types.beta import BetaManagedAgentsAgent

from emulator.anthropic import AnthropicBackend
from emulator.config import EmulatorConfig
from infra.agent_definition import (
    DRIFT_FIELDS,
    AgentDefinitionError,
    check_custom_tools,
    create_payload,
    declared_or_live,
    drift,
    live_state,
    parse_agents,
    update_payload,
)

LOOKUP = {
    "lookup_order": {
        "description": "Look up an order by id.",
        "input_schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    }
}
BARE = {"type": "custom", "name": "bare"}
FULL: dict[str, Any] = {
    "name": "support",
    "description": "Answers support tickets",
    "model": {"id": "claude-opus-4-8", "effort": "high", "speed": "standard"},
    "system": "Be kind.",
    "tools": [
        {
            "type": "agent_toolset_20260401",
            "default_config": {"permission_policy": {"type": "always_ask"}},
            "configs": [{"name": "bash", "enabled": False}, {"name": "read", "enabled": True}],
        },
        {"type": "mcp_toolset", "mcp_server_name": "docs"},
        {"type": "custom", "name": "lookup_order"},
    ],
    "mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com/sse"}],
    "skills": [{"type": "anthropic", "skill_id": "xlsx"}],
    "metadata": {"team": "support", "tier": "1"},
}


def problems(values: dict[str, Any]) -> list[str]:
    with pytest.raises(AgentDefinitionError) as caught:
        parse_agents(values)
    return caught.value.problems


def backend(tmp_path: Path) -> AnthropicBackend:
    return AnthropicBackend(EmulatorConfig(public_base_url="http://127.0.0.1:9", data_dir=tmp_path))


# --- config -------------------------------------------------------------------------------


def test_the_legacy_keys_make_a_one_element_list() -> None:
    (agent,) = parse_agents(
        {"cma:agentName": "old", "cma:model": "claude-opus-4-8", "cma:agentSystem": "Hi"}
    )
    assert (agent.name, agent.model.id, agent.system) == ("old", "claude-opus-4-8", "Hi")
    assert [t.type for t in agent.tools] == ["agent_toolset_20260401"]


def test_no_agent_config_gives_the_default_agent() -> None:
    (agent,) = parse_agents({})
    assert (agent.name, agent.model.id) == ("cma-blaxel-agent", "claude-sonnet-4-6")


def test_agents_arrive_as_json_text_or_as_a_list() -> None:
    agents = [FULL, {"name": "second"}]
    assert parse_agents({"cma:agents": json.dumps(agents)}) == parse_agents({"cma:agents": agents})
    assert [a.name for a in parse_agents({"cma:agents": agents})] == ["support", "second"]


def test_a_bad_tool_type_names_its_config_path() -> None:
    bad = [{"name": "a"}, {"name": "b", "tools": [{"type": "shell"}]}]
    (problem,) = problems({"cma:agents": bad})
    assert problem.startswith("cma:agents[1].tools[0].type: must be one of")
    assert "'shell'" in problem


def test_a_nested_error_names_the_full_path_without_union_tags() -> None:
    bad = copy.deepcopy(FULL)
    bad["tools"][0]["configs"][1]["name"] = "rm"
    bad["tools"][0]["default_config"]["permission_policy"]["type"] = "sometimes"
    assert problems({"cma:agents": [bad]}) == [
        "cma:agents[0].tools[0].default_config.permission_policy.type: must be one of "
        "'always_allow', 'always_ask' or 'auto', got 'sometimes'",
        "cma:agents[0].tools[0].configs[1].name: must be one of 'bash', 'edit', 'read', "
        "'write', 'glob', 'grep', 'web_fetch' or 'web_search', got 'rm'",
    ]


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ({"name": ""}, "cma:agents[0].name: String should have at least 1 character"),
        ({"name": "a", "colour": "red"}, "cma:agents[0].colour: not a known field"),
        ({"name": "a", "model": {"effort": "high"}}, "cma:agents[0].model.id: required"),
        (
            {"name": "a", "model": {"id": "m", "speed": "warp"}},
            "cma:agents[0].model.speed: must be one of 'standard' or 'fast', got 'warp'",
        ),
        (
            {"name": "a", "metadata": {f"k{i}": "v" for i in range(13)}},
            "cma:agents[0].metadata: Dictionary should have at most 12 items after validation",
        ),
        (
            {"name": "a", "tools": [{"type": "custom", "name": "has space"}]},
            "cma:agents[0].tools[0].name: String should match pattern",
        ),
        (
            {"name": "a", "tools": [{"type": "custom", "name": "t", "description": "d"}]},
            "cma:agents[0].tools[0]: give both description and input_schema",
        ),
        (
            {"name": "a", "mcp_servers": [{"name": "docs", "url": "https://x"}]},
            "cma:agents[0]: mcp_servers: not referenced by any mcp_toolset: ['docs']",
        ),
        (
            {"name": "a", "tools": [{"type": "mcp_toolset", "mcp_server_name": "nope"}]},
            "cma:agents[0]: tools: mcp_toolset names servers not in mcp_servers: ['nope']",
        ),
        (
            {"name": "a", "skills": [{"type": "builtin", "skill_id": "x"}]},
            "cma:agents[0].skills[0].type: must be one of 'anthropic' or 'custom'",
        ),
        (
            {"name": "a", "execution_identity": {"type": "aws_role", "role_arn": "nope"}},
            "cma:agents[0].execution_identity.role_arn: String should match pattern",
        ),
        (
            {"name": "a", "multiagent": {"type": "swarm"}},
            "cma:agents[0].multiagent: type: must be 'coordinator' or 'multiagent_20261001'",
        ),
    ],
)
def test_each_invalid_field_is_named_by_its_config_path(agent: Any, expected: str) -> None:
    (problem,) = problems({"cma:agents": [agent]})
    assert problem.startswith(expected), problem


def test_two_agents_of_one_name_are_refused() -> None:
    assert problems({"cma:agents": [{"name": "x"}, {"name": "x"}]}) == [
        "cma:agents: the name 'x' is used more than once"
    ]


def test_the_list_and_the_legacy_keys_together_are_refused() -> None:
    assert problems({"cma:agents": [{"name": "x"}], "cma:model": "m"}) == [
        "cma:agents: set it or cma:model, not both"
    ]


def test_a_bad_legacy_value_names_the_legacy_key() -> None:
    assert problems({"cma:agentName": "   ", "cma:model": {"id": ""}}) == [
        "cma:agentName: must not be blank",
        "cma:model.id: String should have at least 1 character",
    ]


def test_a_list_that_is_not_json_or_not_a_list_is_refused() -> None:
    assert problems({"cma:agents": "[{"})[0].startswith("cma:agents: not a list of agents")
    assert problems({"cma:agents": {"name": "x"}}) == [
        "cma:agents: must be a non-empty list of agents"
    ]
    assert problems({"cma:agents": ["x"]}) == ["cma:agents[0]: must be an object, got str"]


def test_a_custom_tool_must_exist_in_the_module_and_not_be_declared_twice() -> None:
    declared = {
        "type": "custom",
        "name": "lookup_order",
        "description": "again",
        "input_schema": {"type": "object"},
    }
    agents = parse_agents(
        {
            "cma:agents": [
                {"name": "a", "tools": [{"type": "custom", "name": "missing"}]},
                {"name": "b", "tools": [declared]},
            ]
        }
    )
    with pytest.raises(AgentDefinitionError) as caught:
        check_custom_tools(agents, LOOKUP)
    assert caught.value.problems == [
        "cma:agents[0].tools[0].name: no custom tool 'missing' (known: lookup_order)",
        "cma:agents[1].tools[0].name: 'lookup_order' is a tool of cma:customToolsModule; "
        "name it without description and input_schema",
    ]
    check_custom_tools(parse_agents({"cma:agents": [FULL]}), LOOKUP)


# --- payloads -----------------------------------------------------------------------------


def test_the_create_payload_takes_custom_tools_from_the_module() -> None:
    (agent,) = parse_agents({"cma:agents": [FULL]})
    body = create_payload(agent, LOOKUP)
    assert body["tools"][2] == {"type": "custom", "name": "lookup_order", **LOOKUP["lookup_order"]}
    assert body["model"] == {"id": "claude-opus-4-8", "effort": "high", "speed": "standard"}
    assert body["metadata"] == {"team": "support", "tier": "1"}
    assert body["tools"][0]["configs"][0] == {"name": "bash", "enabled": False}


def test_a_model_given_by_id_only_is_sent_as_its_name() -> None:
    (agent,) = parse_agents({"cma:agents": [{"name": "a", "model": "claude-haiku-4-5"}]})
    assert create_payload(agent, {})["model"] == "claude-haiku-4-5"


def test_the_update_sends_a_removed_metadata_key_as_null() -> None:
    (agent,) = parse_agents({"cma:agents": [{"name": "a", "metadata": {"keep": "1"}}]})
    live = {"metadata": {"keep": "0", "gone": "x"}}
    assert update_payload(agent, {}, live)["metadata"] == {"gone": None, "keep": "1"}


def test_the_update_clears_fields_no_longer_declared() -> None:
    (agent,) = parse_agents({"cma:agents": [{"name": "a"}]})
    body = update_payload(agent, {}, {})
    assert body["description"] is None and body["system"] is None
    assert body["mcp_servers"] == [] and body["skills"] == []
    assert body["multiagent"] is None


# --- drift against what the API reads back --------------------------------------------------


def test_an_unchanged_agent_read_back_by_the_emulator_never_drifts(tmp_path: Path) -> None:
    api = backend(tmp_path)
    bare_schema = {"bare": {"description": "No input.", "input_schema": {"type": "object"}}}
    for definition in ({"name": "plain"}, FULL, {"name": "bare", "tools": [BARE]}):
        (agent,) = parse_agents({"cma:agents": [definition]})
        payload = create_payload(agent, LOOKUP | bare_schema)
        live = api.create_agent(payload)
        assert drift(payload, live) == []
        # As the stack's client reads it: the SDK's model, dumped (unset fields as null).
        dumped = BetaManagedAgentsAgent.model_validate(live).model_dump(mode="json")
        assert drift(payload, dumped) == []


def test_tools_enriched_and_reordered_by_the_api_do_not_drift() -> None:
    (agent,) = parse_agents({"cma:agents": [FULL]})
    payload = create_payload(agent, LOOKUP)
    policy = {"type": "always_ask"}
    toolset = {
        "type": "agent_toolset_20260401",
        "default_config": {"enabled": True, "permission_policy": policy},
        # Every tool listed, defaults filled in, in the API's own order.
        "configs": [
            {"type": n, "name": n, "enabled": n != "bash", "permission_policy": policy}
            for n in ("write", "bash", "read", "edit", "glob", "grep", "web_fetch", "web_search")
        ],
    }
    mcp = {
        "type": "mcp_toolset",
        "mcp_server_name": "docs",
        "configs": [],
        "default_config": {"enabled": True, "permission_policy": {"type": "always_ask"}},
    }
    live = {
        **payload,
        "model": {"id": "claude-opus-4-8", "effort": {"type": "high"}, "speed": "standard"},
        "tools": [payload["tools"][2], mcp, toolset],
        "skills": [{"type": "anthropic", "skill_id": "xlsx", "version": "latest"}],
        "metadata": {"tier": "1", "team": "support"},
        "execution_identity": {"type": "service_account"},
        "description": "Answers support tickets",
    }
    assert drift(payload, live) == []


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("name", {"name": "renamed"}),
        ("description", {"description": "other"}),
        ("system", {"system": ""}),
        ("model", {"model": {"id": "claude-opus-4-8", "effort": "low"}}),
        ("model", {"model": {"id": "claude-opus-4-8", "effort": "high", "speed": "fast"}}),
        ("tools", {"tools": [{"type": "agent_toolset_20260401"}], "mcp_servers": []}),
        ("mcp_servers", {"mcp_servers": [{"type": "url", "name": "docs", "url": "https://evil"}]}),
        ("skills", {"skills": [{"type": "anthropic", "skill_id": "xlsx", "version": "2"}]}),
        ("metadata", {"metadata": {"added": "out of band"}}),
        ("metadata", {"metadata": {"team": None}}),
        ("execution_identity", {"execution_identity": {"type": "aws_role", "role_arn": "arn"}}),
        ("multiagent", {"multiagent": {"type": "coordinator", "agents": [{"type": "self"}]}}),
    ],
)
def test_an_out_of_band_edit_of_any_field_drifts(
    tmp_path: Path, field: str, edit: dict[str, Any]
) -> None:
    api = backend(tmp_path)
    (agent,) = parse_agents({"cma:agents": [FULL]})
    payload = create_payload(agent, LOOKUP)
    created = api.create_agent(payload)
    edited = api.update_agent(created["id"], edit)
    assert field in drift(payload, edited)


def test_an_out_of_band_change_of_one_tool_config_drifts() -> None:
    (agent,) = parse_agents({"cma:agents": [FULL]})
    payload = create_payload(agent, LOOKUP)
    live = copy.deepcopy(payload)
    live["tools"][0]["configs"].append({"name": "grep", "enabled": False})
    assert drift(payload, live) == ["tools"]
    live = copy.deepcopy(payload)
    live["tools"][1]["default_config"] = {"permission_policy": {"type": "always_allow"}}
    assert drift(payload, live) == ["tools"]
    live = copy.deepcopy(payload)
    live["tools"][2]["input_schema"] = {"type": "object", "properties": {}}
    assert drift(payload, live) == ["tools"]


def test_the_update_payload_restores_the_declared_agent(tmp_path: Path) -> None:
    api = backend(tmp_path)
    (agent,) = parse_agents({"cma:agents": [FULL]})
    payload = create_payload(agent, LOOKUP)
    created = api.create_agent(payload)
    edited = api.update_agent(
        created["id"], {"metadata": {"extra": "x"}, "system": "other", "skills": []}
    )
    assert drift(payload, edited) == ["metadata", "skills", "system"]
    restored = api.update_agent(created["id"], update_payload(agent, LOOKUP, edited))
    assert drift(payload, restored) == []
    assert "extra" not in restored["metadata"]


def test_the_state_of_a_read_back_diffs_like_the_read_back(tmp_path: Path) -> None:
    api = backend(tmp_path)
    (agent,) = parse_agents({"cma:agents": [FULL]})
    payload = create_payload(agent, LOOKUP)
    live = api.create_agent(payload)
    state = live_state(live)
    assert (state["id"], state["version"]) == (live["id"], 1)
    assert "created_at" not in state and "updated_at" not in state
    assert drift(payload, state) == []
    (renamed,) = parse_agents({"cma:agents": [{**FULL, "name": "renamed"}]})
    assert drift(create_payload(renamed, LOOKUP), state) == ["name"]


def test_a_multiagent_roster_resolved_by_the_api_does_not_drift(tmp_path: Path) -> None:
    api = backend(tmp_path)
    helper = api.create_agent({"name": "helper", "model": "claude-sonnet-4-6"})
    for multiagent in (
        {"type": "coordinator", "agents": [{"type": "self"}, helper["id"]]},
        {"type": "multiagent_20261001", "advisor": {"type": "enabled", "model": "claude-opus-4-8"}},
        {
            "type": "multiagent_20261001",
            "subagents": {"type": "enabled", "predefined_agents": [helper["id"]]},
        },
    ):
        (agent,) = parse_agents({"cma:agents": [{"name": "lead", "multiagent": multiagent}]})
        payload = create_payload(agent, {})
        assert drift(payload, api.create_agent(payload)) == [], multiagent


def test_an_out_of_band_multiagent_member_drifts_and_the_update_restores_its_default(
    tmp_path: Path,
) -> None:
    api = backend(tmp_path)
    (agent,) = parse_agents(
        {"cma:agents": [{"name": "lead", "multiagent": {"type": "multiagent_20261001"}}]}
    )
    payload = create_payload(agent, {})
    created = api.create_agent(payload)
    # An edit that sends only the advisor: the API merges it into the stored members.
    edited = api.update_agent(
        created["id"],
        {
            "multiagent": {
                "type": "multiagent_20261001",
                "advisor": {"type": "enabled", "model": "m"},
            }
        },
    )
    assert drift(payload, edited) == ["multiagent"]
    restored = api.update_agent(created["id"], update_payload(agent, {}, edited))
    assert restored["multiagent"]["advisor"] == {"type": "disabled"}
    assert drift(payload, restored) == []


def test_outputs_keep_declared_values_and_take_only_drifted_ones_from_the_read_back(
    tmp_path: Path,
) -> None:
    api = backend(tmp_path)
    (agent,) = parse_agents({"cma:agents": [FULL]})
    payload = create_payload(agent, LOOKUP)
    created = api.create_agent(payload)
    assert declared_or_live(payload, created) == {f: payload[f] for f in DRIFT_FIELDS}
    edited = api.update_agent(created["id"], {"system": "edited", "metadata": {"x": "1"}})
    outputs = declared_or_live(payload, edited)
    changed = sorted(f for f in DRIFT_FIELDS if outputs[f] != payload[f])
    assert changed == ["metadata", "system"]
    assert outputs["system"] == "edited"
    assert outputs["tools"] == payload["tools"]  # enriched by the API, yet as declared
