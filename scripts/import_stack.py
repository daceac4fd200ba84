"""`python -m scripts.import_stack --stack S [--environment-id env_…] [--agent-id agent_…]
[--sandbox NAME] [--no-up]`: take existing objects into a stack.

The dynamic provider host cannot serve `pulumi import` (its Read needs a provider the engine
only has for resources already in state), so this takes the objects over the way the
providers do on purpose: it sets the stack's import keys (`cma:importEnvironmentId`,
`cma:importAgentId`, `blaxel:importOrchestratorSandbox`) and the names to the live ones (so
nothing is renamed), then runs `pulumi up`, whose creates adopt exactly those objects and
mark them as the stack's own. After it, `pulumi up` shows no changes.
Run it from the project (or pass --cwd) with the stack's usual Pulumi environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from scripts.engine import REPO_ROOT, PulumiProject


def import_config(
    environment: dict[str, Any] | None, agent: dict[str, Any] | None, sandbox: str | None
) -> dict[str, str]:
    """The config that makes the next `up` adopt these objects, keeping their names (pure)."""
    config: dict[str, str] = {}
    if environment:
        config["cma:importEnvironmentId"] = str(environment["id"])
        config["cma:environmentName"] = str(environment["name"])
    if agent:
        config["cma:importAgentId"] = str(agent["id"])
        config["cma:agentName"] = str(agent["name"])
    if sandbox:
        config["blaxel:orchestratorSandboxName"] = sandbox
        config["blaxel:importOrchestratorSandbox"] = "true"
    return config


def stack_config(project: PulumiProject) -> dict[str, str]:
    raw = json.loads(project.run("config", "--show-secrets", "--json").stdout or "{}")
    return {key: str(entry.get("value")) for key, entry in raw.items() if "value" in entry}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", type=Path, default=REPO_ROOT)
    parser.add_argument("--environment-id")
    parser.add_argument("--agent-id")
    parser.add_argument("--sandbox", help="the orchestrator sandbox's name")
    parser.add_argument("--no-up", action="store_true", help="only set the config")
    args = parser.parse_args(argv)
    project = PulumiProject(cwd=args.cwd, stack=args.stack, env=dict(os.environ))
    import_into(project, args.environment_id, args.agent_id, args.sandbox, up=not args.no_up)
    return 0


def import_into(
    project: PulumiProject,
    environment_id: str | None,
    agent_id: str | None,
    sandbox: str | None,
    up: bool = True,
) -> dict[str, str]:
    """Check the objects exist (with the stack's credentials), set the config, run `up`."""
    from pulumi.dynamic import Config, ConfigureRequest

    from infra.clients import anthropic as api
    from infra.providers.base import CmaProvider

    provider = CmaProvider()
    provider.configure(ConfigureRequest(Config(stack_config(project), "cma-blaxel")))
    environment = (
        api.get_environment(provider.anthropic(), environment_id) if environment_id else None
    )
    agent = api.get_agent(provider.anthropic(), agent_id) if agent_id else None
    if sandbox:
        from infra.clients import blaxel as bl

        bl.get_sandbox_by_name(provider.blaxel(), sandbox)  # it must exist
    config = import_config(environment, agent, sandbox)
    for key, value in config.items():
        project.set_config(key, value)
        print(f"import-stack: {key} = {value}", file=sys.stderr)
    if up:
        project.run("up", "--yes", "--skip-preview", timeout=1800)
        print("import-stack: taken over; `pulumi up` now shows no changes", file=sys.stderr)
    return config


if __name__ == "__main__":
    sys.exit(main())
