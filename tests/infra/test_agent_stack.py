"""The agents' plan: two agents and one custom tool from config, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.agent_stack import AgentsConfigError, plan_agents

TOOL = '''
from anthropic import beta_tool


@beta_tool
def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return order_id
'''
TWO_AGENTS = [
    {"name": "support", "tools": [{"type": "custom", "name": "lookup_order"}]},
    {"name": "Reviewer Bot", "system": "Review."},
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "tools.py").write_text(TOOL)
    return tmp_path


def test_two_agents_and_a_custom_tool_make_one_plan(root: Path) -> None:
    plan = plan_agents(
        {
            "cma:agents": TWO_AGENTS,
            "cma:customToolsModule": "tools.py",
            "cma:workerImage": {"aptPackages": ["unzip"]},
        },
        root,
    )
    assert [a.name for a in plan.agents] == ["support", "Reviewer Bot"]
    assert plan.resource_names() == ["agent", "agent-reviewer-bot"]
    (tool,) = plan.create_payload(0)["tools"]
    assert (tool["name"], tool["description"]) == ("lookup_order", "Look up an order.")
    assert plan.create_payload(1)["system"] == "Review."
    assert plan.worker_image.custom_tools_module == "tools.py"
    assert plan.worker_image.apt_packages == ["unzip"]
    assert plan.update_payload(1, {"metadata": {"old": "x"}})["metadata"] == {"old": None}


def test_the_problems_of_every_key_come_back_together(root: Path) -> None:
    with pytest.raises(AgentsConfigError) as caught:
        plan_agents(
            {
                "cma:agents": [{"name": "a", "tools": [{"type": "shell"}]}],
                "cma:workerImage": {"pipPackages": ["requests"]},
                "cma:customToolsModule": "missing.py",
            },
            root,
        )
    keys = [
        problem.split(":", 2)[1].split(".")[0].split("[")[0] for problem in caught.value.problems
    ]
    assert keys == ["agents", "workerImage", "customToolsModule"]


def test_an_agent_naming_a_tool_the_module_lacks_is_refused(root: Path) -> None:
    agents = [{"name": "a", "tools": [{"type": "custom", "name": "refund"}]}]
    with pytest.raises(AgentsConfigError) as caught:
        plan_agents({"cma:agents": agents, "cma:customToolsModule": "tools.py"}, root)
    assert caught.value.problems == [
        "cma:agents[0].tools[0].name: no custom tool 'refund' (known: lookup_order)"
    ]


def test_a_custom_tool_without_a_module_says_the_key_is_unset(root: Path) -> None:
    with pytest.raises(AgentsConfigError) as caught:
        plan_agents({"cma:agents": TWO_AGENTS[:1]}, root)
    assert caught.value.problems == [
        "cma:agents[0].tools[0].name: no custom tool 'lookup_order' "
        "(known: none: cma:customToolsModule is not set)"
    ]


def test_agents_using_module_tools_carry_its_digest_so_a_code_change_is_a_new_version(
    root: Path,
) -> None:
    values = {"cma:agents": TWO_AGENTS, "cma:customToolsModule": "tools.py"}
    before = plan_agents(values, root)
    stamp = before.create_payload(0)["metadata"]["cma-custom-tools"]
    assert stamp.startswith("sha256:")
    assert "cma-custom-tools" not in before.create_payload(1)["metadata"]  # uses no module tool
    assert plan_agents(values, root).create_payload(0) == before.create_payload(0)
    (root / "tools.py").write_text(TOOL.replace("return order_id", "return order_id.upper()"))
    after = plan_agents(values, root).create_payload(0)
    assert after["metadata"]["cma-custom-tools"] != stamp
    assert after["tools"] == before.create_payload(0)["tools"]  # same schema, new code
