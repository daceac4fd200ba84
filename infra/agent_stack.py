"""The stack's agents from config to payloads: one call for the program to make at preview.

`plan_agents(values, root)` reads `cma:agents` (or the older single-agent keys),
`cma:customToolsModule` and `cma:workerImage`, imports the custom-tools module to derive its
tools' specs, and checks that every custom tool an agent names exists; all problems come back
together in one `AgentsConfigError`, each naming its key. The plan then gives each agent's
create / update body, and the worker image's extension for the image provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.agent_definition import (
    AgentDefinition,
    AgentDefinitionError,
    check_custom_tools,
    create_payload,
    parse_agents,
    update_payload,
)
from infra.custom_tools import (
    CustomToolsConfigError,
    custom_tool_specs,
    module_digest,
    module_path,
)
from infra.images import REPO_ROOT
from infra.worker_image import WorkerImageConfig, WorkerImageError, parse_worker_image

# The config keys this plan reads (beside cma:agentName, cma:model, cma:agentSystem).
KEYS = ("cma:agents", "cma:customToolsModule", "cma:workerImage")
TOOLS_DIGEST_KEY = "cma-custom-tools"


class AgentsConfigError(ValueError):
    """The agents' config is invalid; `problems` holds one `key: message` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid agent config:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class AgentsPlan:
    """The validated agents, the custom tools' specs, and the worker image's extension."""

    agents: tuple[AgentDefinition, ...]
    custom_tools: Mapping[str, dict[str, Any]]
    worker_image: WorkerImageConfig

    tools_digest: str | None = None  # of the custom-tools module, when there is one

    def create_payload(self, index: int) -> dict[str, Any]:
        return create_payload(self._stamped(index), self.custom_tools)

    def update_payload(self, index: int, live: Mapping[str, Any]) -> dict[str, Any]:
        return update_payload(self._stamped(index), self.custom_tools, live)

    def _stamped(self, index: int) -> AgentDefinition:
        """An agent using the module's tools carries the module's digest in its metadata."""
        agent = self.agents[index]
        if not (self.tools_digest and agent.custom_tool_names()):
            return agent
        metadata = {**agent.metadata, TOOLS_DIGEST_KEY: self.tools_digest}
        return agent.model_copy(update={"metadata": metadata})

    def resource_names(self) -> list[str]:
        """A Pulumi resource name per agent, stable while its name is (the first: `agent`)."""
        return ["agent"] + [f"agent-{resource_suffix(a.name)}" for a in self.agents[1:]]


def resource_suffix(agent_name: str) -> str:
    """An agent's name as a resource name part (the first agent keeps the older `agent`)."""
    return re.sub(r"[^a-z0-9]+", "-", agent_name.lower()).strip("-") or "unnamed"


def plan_agents(values: Mapping[str, Any], root: Path = REPO_ROOT) -> AgentsPlan:
    """The plan of `values` (full config keys); every problem of every key at once."""
    problems: list[str] = []
    agents: list[AgentDefinition] = []
    specs: dict[str, dict[str, Any]] = {}
    worker_image = WorkerImageConfig.model_validate({})
    try:
        agents = parse_agents(values)
    except AgentDefinitionError as exc:
        problems += exc.problems
    try:
        worker_image = parse_worker_image(values, root)
    except WorkerImageError as exc:
        problems += exc.problems
    ref = values.get("cma:customToolsModule")
    digest = None
    if ref and not any(p.startswith("cma:customToolsModule") for p in problems):
        try:
            path = module_path(str(ref), root)
            specs, digest = custom_tool_specs(path), module_digest(path)
        except CustomToolsConfigError as exc:
            problems.append(str(exc))
    if agents and not problems:
        try:
            check_custom_tools(agents, specs)
        except AgentDefinitionError as exc:
            problems += exc.problems
    if problems:
        raise AgentsConfigError(problems)
    return AgentsPlan(tuple(agents), specs, worker_image, digest)
