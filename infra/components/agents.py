"""The Anthropic side: the self-hosted environment and the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from infra.agent_stack import resource_suffix
from infra.config import NAME_KEYS
from infra.names import Owner
from infra.providers.agent import DEFAULT_MODEL, Agent
from infra.providers.environment import SelfHostedEnvironment


@dataclass
class AgentPlatformArgs:
    """What to create on the Anthropic side (credentials come from the stack config)."""

    environment_name: pulumi.Input[str]
    agent_name: pulumi.Input[str]
    owner: Owner
    model: pulumi.Input[str] = DEFAULT_MODEL
    system: pulumi.Input[str] | None = None
    metadata: dict[str, str] = field(default_factory=lambda: {"managed-by": "cma-blaxel"})
    # Existing resources to take over (by id) instead of creating one of our own.
    import_environment_id: str | None = None
    import_agent_id: str | None = None
    protect: bool = False
    # Agents as code: each an `agents.create` body (`infra.agent_stack.AgentsPlan`); when
    # given, they replace the one agent of agent_name / model / system.
    agents: list[dict[str, Any]] = field(default_factory=list)


class AgentPlatform(pulumi.ComponentResource):
    """A self-hosted environment (`env_…`) and an agent (`agent_…`, versioned)."""

    environment_id: pulumi.Output[str]
    agent_id: pulumi.Output[str]
    agent_version: pulumi.Output[int]

    def __init__(
        self, name: str, args: AgentPlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cma:anthropic:AgentPlatform", name, None, opts)

        child = pulumi.ResourceOptions(parent=self, protect=args.protect)
        owner = {"project": args.owner.project, "stack": args.owner.stack}
        self.environment = SelfHostedEnvironment(
            f"{name}-environment",
            {
                "name": args.environment_name,
                "description": "Self-hosted tools on Blaxel sandboxes (cma-blaxel)",
                "metadata": dict(args.metadata),
                "owner": owner,
                "name_key": NAME_KEYS["environment"],
                "adopt_id": args.import_environment_id,
            },
            child,
        )
        legacy = not args.agents
        definitions = args.agents or [
            {"name": args.agent_name, "model": args.model, "system": args.system}
        ]
        self.all_agents: list[Agent] = []
        self.agents: dict[str, dict[str, pulumi.Output[Any]]] = {}
        for index, definition in enumerate(definitions):
            # The first keeps the older resource name, so an existing stack's agent stays put.
            suffix = "" if index == 0 else f"-{resource_suffix(str(definition['name']))}"
            agent = Agent(
                f"{name}-agent{suffix}",
                {
                    **definition,
                    "metadata": {**args.metadata, **(definition.get("metadata") or {})},
                    "owner": owner,
                    "name_key": NAME_KEYS["agent"] if legacy else f"cma:agents[{index}].name",
                    "adopt_id": args.import_agent_id if index == 0 else None,
                },
                child,
            )
            self.all_agents.append(agent)
            if not legacy:
                self.agents[str(definition["name"])] = {
                    "id": agent.agent_id,
                    "version": agent.version,
                }
        self.agent = self.all_agents[0]
        self.environment_id = self.environment.environment_id
        self.agent_id = self.agent.agent_id
        self.agent_version = self.agent.version
        self.register_outputs(
            {
                "environment_id": self.environment_id,
                "agent_id": self.agent_id,
                "agent_version": self.agent_version,
                "agents": self.agents,
            }
        )
