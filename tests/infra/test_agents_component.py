"""Agents as code in the resource graph (Pulumi's mocks): one agent resource per entry of
`cma:agents`, custom tools declared from the module, the worker image built with them, the
per-agent outputs; the older single-agent keys keep the older agent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.config import ConfigError
from tests.infra.test_components import Registration, StackMocks, _run, registrations

__all__ = ["registrations"]  # the fixture, shared with the graph tests

TOOL = '''
from anthropic import beta_tool


@beta_tool
def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return "{answer}"
'''
AGENTS = [
    {"name": "support", "tools": [{"type": "custom", "name": "lookup_order"}]},
    {"name": "Reviewer", "system": "Review.", "metadata": {"team": "qa"}},
]


@pytest.fixture
def inputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """The inputs of every resource the program registers, by name; the program runs in a
    project directory holding a custom-tools module."""
    (tmp_path / "tools.py").write_text(TOOL.format(answer="shipped"))
    monkeypatch.chdir(tmp_path)
    seen: dict[str, dict[str, Any]] = {}
    original = StackMocks.new_resource

    def record(self: Any, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        seen[args.name] = dict(args.inputs)
        return original(self, args)

    monkeypatch.setattr(StackMocks, "new_resource", record)
    yield seen


def config(**extra: Any) -> dict[str, str]:
    return {
        "cma:agents": json.dumps(AGENTS),
        "cma:customToolsModule": "tools.py",
        **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in extra.items()},
    }


def test_each_agent_is_a_resource_and_the_custom_tool_comes_from_the_module(
    registrations: dict[str, Registration], inputs: dict[str, dict[str, Any]]
) -> None:
    outputs = _run(config())
    support, reviewer = inputs["cma-platform-agent"], inputs["cma-platform-agent-reviewer"]
    assert registrations["cma-platform-agent-reviewer"].parent.endswith("::cma-platform")
    (tool,) = support["tools"]
    assert (tool["name"], tool["description"]) == ("lookup_order", "Look up an order.")
    assert tool["input_schema"]["required"] == ["order_id"]
    assert reviewer["system"] == "Review."
    assert reviewer["metadata"] == {"managed-by": "cma-blaxel", "team": "qa"}
    assert reviewer["name_key"] == "cma:agents[1].name"
    assert set(outputs["agents"]) == {"support", "Reviewer"}
    assert outputs["agents"]["support"] == {"id": "agent_mock", "version": 1}


def test_the_worker_image_carries_the_module_and_its_digest_follows_the_code(
    registrations: dict[str, Registration], inputs: dict[str, dict[str, Any]]
) -> None:
    _run(config(**{"cma:workerImage": {"aptPackages": ["unzip"]}}))
    worker = inputs["cma-images-worker"]
    assert worker["extension"]["custom_tools_module"] == "tools.py"
    assert worker["extension"]["apt_packages"] == ["unzip"]
    first = worker["digest"]
    _run(config(**{"cma:workerImage": {"aptPackages": ["unzip"]}}))
    assert inputs["cma-images-worker"]["digest"] == first
    Path("tools.py").write_text(TOOL.format(answer="delayed"))
    _run(config(**{"cma:workerImage": {"aptPackages": ["unzip"]}}))
    assert inputs["cma-images-worker"]["digest"] != first


def test_the_older_keys_keep_the_older_agent_and_image_inputs(
    registrations: dict[str, Registration], inputs: dict[str, dict[str, Any]]
) -> None:
    outputs = _run({"cma:agentName": "old", "cma:agentSystem": "Hi"})
    agent = inputs["cma-platform-agent"]
    assert (agent["name"], agent["model"], agent["system"]) == ("old", "claude-sonnet-4-6", "Hi")
    assert "tools" not in agent and "mcp_servers" not in agent
    assert "extension" not in inputs["cma-images-worker"]
    assert outputs["agents"] == {}


def test_a_prebuilt_worker_image_is_used_as_is(
    registrations: dict[str, Registration], inputs: dict[str, dict[str, Any]]
) -> None:
    outputs = _run({"cma:workerImage": json.dumps({"image": "registry.example.com/w:1"})})
    assert "cma-images-worker" not in inputs
    assert outputs["worker_image"] == "registry.example.com/w:1"


def test_bad_agent_config_fails_the_program_naming_every_key(
    registrations: dict[str, Registration], inputs: dict[str, dict[str, Any]]
) -> None:
    with pytest.raises(ConfigError) as caught:
        _run(
            {
                "cma:agents": json.dumps([{"name": "a", "tools": [{"type": "shell"}]}]),
                "cma:workerImage": json.dumps({"pipPackages": ["requests"]}),
            }
        )
    assert [p.split(":")[1].split("[")[0].split(".")[0] for p in caught.value.problems] == [
        "agents",
        "workerImage",
    ]
