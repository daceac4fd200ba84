"""Custom tools in the worker: loading the user's module, and serving a custom tool's call end
to end (`python -m worker` against the emulated CMA, the agent declared from the module)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.lib.tools.agent_toolset import AgentToolContext

from emulator.server import EmulatorServer
from infra.agent_definition import create_payload, parse_agents
from infra.custom_tools import custom_tool_specs
from infra.worker_image import build_worker_image, parse_worker_image
from tests.orchestrator_app.emulated import ROOT, Stack, make_stack, push_worker_image, wait_for
from worker.custom_tools import CUSTOM_TOOLS_ENV, CustomToolsError, load_tools, worker_tools

ORDERS = '''
from anthropic import beta_tool, beta_async_tool

from .status import STATUS


@beta_tool
def lookup_order(order_id: str) -> str:
    """Look up an order by its id.

    Args:
        order_id: the order's id, e.g. A1
    """
    return f"order {order_id}: {STATUS}"


@beta_async_tool
async def cancel_order(order_id: str, reason: str = "") -> str:
    """Cancel an order."""
    return f"cancelled {order_id}"


alias = lookup_order  # the same tool twice is one tool
'''


def write_package(root: Path, body: str = ORDERS) -> Path:
    package = root / "orders"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    (package / "status.py").write_text('STATUS = "shipped"\n')
    return package


def test_the_tools_of_a_package_load_in_definition_order(tmp_path: Path) -> None:
    tools = load_tools(write_package(tmp_path))
    assert [t.name for t in tools] == ["lookup_order", "cancel_order"]
    assert tools[0].call({"order_id": "A1"}) == "order A1: shipped"


def test_the_worker_serves_the_toolset_and_then_the_custom_tools(tmp_path: Path) -> None:
    package = write_package(tmp_path)
    context = AgentToolContext(workdir=tmp_path)
    with_custom = worker_tools({CUSTOM_TOOLS_ENV: str(package)})(context)
    without = worker_tools({})(context)
    assert [t.name for t in with_custom] == [t.name for t in without] + [
        "lookup_order",
        "cancel_order",
    ]
    assert "bash" in [t.name for t in without]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = 1\n", "no tools (decorate functions with anthropic's @beta_tool)"),
        ("raise RuntimeError('boom')\n", "importing it raised RuntimeError('boom')"),
        (
            "from anthropic import beta_tool\n"
            "@beta_tool(name='bash')\n"
            "def shell() -> str:\n    'Shadow.'\n    return ''\n",
            "names of built-in tools: ['bash']",
        ),
        (
            "from anthropic import beta_tool\n"
            "@beta_tool(name='t')\ndef a() -> str:\n    'A.'\n    return ''\n"
            "@beta_tool(name='t')\ndef b() -> str:\n    'B.'\n    return ''\n",
            "tool names used twice: ['t']",
        ),
    ],
)
def test_an_unusable_module_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    module = tmp_path / "tools.py"
    module.write_text(body)
    with pytest.raises(CustomToolsError) as caught:
        load_tools(module)
    assert str(caught.value) == f"{module}: {message}"


def test_a_path_that_is_no_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CustomToolsError, match="not a Python file or a package"):
        load_tools(tmp_path)


# --- end to end -------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with EmulatorServer() as server:
        made = make_stack(server, worker_image="", tmp=tmp_path, name="custom-tools")
        try:
            yield made
        finally:
            made.client.close()


def reply(stack: Stack, session_id: str) -> str | None:
    """The text of the session's first agent message, once there is one."""
    for event in stack.events(session_id):
        if event.type == "agent.message":
            return str(event.content[0].text)
    return None


def agent_with_custom_tool(stack: Stack, package: Path) -> str:
    """An agent declared as the stack would: the tool's schema derived from the module."""
    (definition,) = parse_agents(
        {
            "cma:agents": [
                {
                    "name": "orders",
                    "tools": [
                        {"type": "agent_toolset_20260401"},
                        {"type": "custom", "name": "lookup_order"},
                    ],
                }
            ]
        }
    )
    payload: Any = create_payload(definition, custom_tool_specs(package))
    return str(stack.client.beta.agents.create(**payload).id)


def test_a_session_gets_the_custom_tools_result_from_the_worker(
    stack: Stack, tmp_path: Path
) -> None:
    package = write_package(tmp_path / "project")
    agent_id = agent_with_custom_tool(stack, package)
    session_id = stack.client.beta.sessions.create(
        agent=agent_id, environment_id=stack.environment_id
    ).id
    with anthropic.Anthropic(
        base_url=stack.server.config.anthropic_base_url, auth_token=stack.environment_key
    ) as client:
        work = client.beta.environments.work
        item = wait_for(lambda: work.poll(stack.environment_id), "queued work")
        work.ack(item.id, environment_id=stack.environment_id)
    assert item.secret
    app = tmp_path / "app"
    app.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "ANTHROPIC_BASE_URL": stack.server.config.anthropic_base_url,
        "ANTHROPIC_ENVIRONMENT_ID": stack.environment_id,
        "ANTHROPIC_SESSION_ID": session_id,
        "ANTHROPIC_WORK_ID": item.id,
        "ANTHROPIC_WORK_SECRET": item.secret,
        CUSTOM_TOOLS_ENV: str(package),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stack.say(session_id, 'custom lookup_order: {"order_id": "A1"}')
        answer = wait_for(lambda: reply(stack, session_id), "the agent's reply")
        assert answer == "Done. lookup_order (ok): order A1: shipped"
        results = [e for e in stack.events(session_id) if e.type == "user.custom_tool_result"]
        assert len(results) == 1 and results[0].is_error is False
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


FACTORY = """
from worker.image import worker_image


def quick_worker():
    return worker_image(max_idle_seconds=1)
"""


def test_the_image_the_stack_builds_carries_the_tools_to_the_worker_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path: the extended image pushed to the emulated Blaxel, the orchestrator
    starting `python -m worker` in a sandbox laid out from it, the tool's result in the session."""
    project = tmp_path / "project"
    package = write_package(project)
    (project / "quick_image.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(project))
    config = parse_worker_image(
        {
            "cma:customToolsModule": "orders",
            "cma:workerImage": {"factory": "quick_image:quick_worker"},
        },
        project,
    )
    with EmulatorServer() as server:
        image_ref = push_worker_image(server, build_worker_image(config, project))
        stack = make_stack(server, image_ref, tmp_path, name="custom-tools-image")
        try:
            stack.orchestrator()
            agent_id = agent_with_custom_tool(stack, package)
            session_id = stack.client.beta.sessions.create(
                agent=agent_id, environment_id=stack.environment_id
            ).id
            stack.say(session_id, 'custom lookup_order: {"order_id": "B2"}')
            answer = wait_for(lambda: reply(stack, session_id), "the agent's reply")
            assert answer == "Done. lookup_order (ok): order B2: shipped"
        finally:
            stack.close()
            stack.client.close()
