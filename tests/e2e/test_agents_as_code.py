"""Agents as code through the real engine: two agents and one custom tool come up, a session
on the agent that lists the tool gets its result from a worker of the stack, editing the tool's
code previews as the worker image and that agent and nothing else (no orchestrator restart),
and after `up` a new session's worker serves the edited tool; an out-of-band edit shows on
refresh."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest

from tests.e2e.conftest import EndToEnd

pytestmark = pytest.mark.engine

TOOL = '''
from anthropic import beta_tool


@beta_tool
def lookup_order(order_id: str) -> str:
    """Look up an order by its id."""
    return f"order {order_id}: {STATUS}"


STATUS = "{status}"
'''
AGENTS = [
    {
        "name": "orders",
        "tools": [
            {"type": "agent_toolset_20260401"},
            {"type": "custom", "name": "lookup_order"},
        ],
        "metadata": {"team": "orders"},
    },
    {"name": "reviewer", "system": "Review changes.", "model": {"id": "claude-opus-4-8"}},
]


def preview_ops(e2e: EndToEnd) -> dict[str, str]:
    """Resource name -> planned operation, for every step that is not `same`."""
    done = e2e.project.run("preview", "--json")
    steps = json.loads(done.stdout).get("steps") or []
    return {s["urn"].split("::")[-1]: s["op"] for s in steps if s.get("op") != "same"}


def reply(client: anthropic.Anthropic, session_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.beta.sessions.events.list(session_id):
            if event.type == "agent.message":
                return str(event.content[0].text)  # type: ignore[union-attr]
        time.sleep(0.5)
    raise AssertionError("no reply from the agent")


def lookup_in_a_new_session(
    client: anthropic.Anthropic, agent_id: str, environment_id: str, order_id: str
) -> str:
    """A new session on the agent, asked to run the custom tool; the agent's reply."""
    session = client.beta.sessions.create(agent=agent_id, environment_id=environment_id)
    text = 'custom lookup_order: {"order_id": "' + order_id + '"}'
    client.beta.sessions.events.send(
        session.id,
        events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}],
    )
    return reply(client, session.id)


def test_two_agents_and_a_custom_tool_end_to_end(e2e: EndToEnd) -> None:
    project_dir = e2e.project.cwd
    (project_dir / "orders_tools.py").write_text(TOOL.replace("{status}", "shipped"))
    for key in ("cma:agentName", "cma:model"):
        e2e.project.run("config", "rm", key, check=False)
    e2e.project.set_config("cma:agents", json.dumps(AGENTS))
    e2e.project.set_config("cma:customToolsModule", "orders_tools.py")
    outputs: dict[str, Any] = e2e.up_fully_wired()
    assert set(outputs["agents"]) == {"orders", "reviewer"}
    info = e2e.emulator_info

    with anthropic.Anthropic(
        base_url=info["anthropic_base_url"], api_key=info["anthropic_api_key"]
    ) as client:
        orders = client.beta.agents.retrieve(outputs["agents"]["orders"]["id"])
        assert [t.type for t in orders.tools] == ["agent_toolset_20260401", "custom"]
        answer = lookup_in_a_new_session(client, orders.id, outputs["environment_id"], "A1")
        assert answer == "Done. lookup_order (ok): order A1: shipped"
        assert preview_ops(e2e) == {}  # an unchanged stack, agents enriched by the API

        (project_dir / "orders_tools.py").write_text(TOOL.replace("{status}", "delayed"))
        # The worker image and the agent that lists the tool, and nothing else: the server
        # makes workers from the image's `:latest`, so it needs no new settings.
        assert preview_ops(e2e) == {"cma-images-worker": "update", "cma-platform-agent": "update"}
        e2e.project.up()
        edited: dict[str, Any] = e2e.project.outputs()
        assert edited["orchestrator_revision"] == outputs["orchestrator_revision"]
        assert edited["agents"]["orders"]["version"] > outputs["agents"]["orders"]["version"]
        # A new session's worker is made from the new image and serves the edited tool.
        answer = lookup_in_a_new_session(client, orders.id, outputs["environment_id"], "A2")
        assert answer == "Done. lookup_order (ok): order A2: delayed"

        reviewer_id = outputs["agents"]["reviewer"]["id"]
        version = client.beta.agents.retrieve(reviewer_id).version
        client.beta.agents.update(reviewer_id, version=version, system="Edited by hand.")
        e2e.project.run("refresh", "--yes")
        assert preview_ops(e2e) == {"cma-platform-agent-reviewer": "update"}
        e2e.project.up()
        assert client.beta.agents.retrieve(reviewer_id).system == "Review changes."
        assert preview_ops(e2e) == {}
