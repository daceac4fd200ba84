"""The whole stack as one component: what `infra/__main__.py` builds, and what a user's own
Pulumi program can build too (`CmaBlaxelStack("cma", CmaBlaxelStackArgs.from_config(cfg))`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from infra.agent_stack import AgentsConfigError, AgentsPlan, plan_agents
from infra.components.agents import AgentPlatform, AgentPlatformArgs
from infra.components.images import ImageSpec, SandboxImages, SandboxImagesArgs
from infra.components.orchestrator import Orchestrator, OrchestratorArgs, WorkerSettings
from infra.config import NAME_KEYS, ConfigError, StackConfig, StackNames, secret_output
from infra.names import Owner
from infra.providers.agent import DEFAULT_MODEL
from infra.worker_image import WorkerImageConfig

WORKER_FACTORY = "worker.image:worker_image"
ORCHESTRATOR_FACTORY = "orchestrator_app.image:orchestrator_image"


@dataclass
class CmaBlaxelStackArgs:
    """The validated config, the unique names, the owner and where the two images come from.

    Names and owner default to ones scoped to the current project and stack, so two stacks
    never share an object; the agent system prompt and the names also accept Outputs.
    """

    config: StackConfig
    worker_image: ImageSpec
    orchestrator_image: ImageSpec
    names: StackNames
    owner: Owner
    # The agents as code (cma:agents, cma:customToolsModule, cma:workerImage), validated.
    agents: AgentsPlan | None = None

    @classmethod
    def from_config(cls, config: StackConfig, owner: Owner | None = None) -> CmaBlaxelStackArgs:
        """The images of the `worker/` and `orchestrator_app/` packages."""
        owner = owner or Owner(pulumi.get_project(), pulumi.get_stack())
        names = config.names(owner.project, owner.stack)
        try:
            # User files (custom tools, extra files) are relative to the project directory.
            plan = plan_agents(config.agent_values(names.agent), Path.cwd())
        except AgentsConfigError as exc:
            raise ConfigError(exc.problems) from None
        extension = plan.worker_image.model_dump()
        has_extension = extension != WorkerImageConfig.model_validate({}).model_dump()
        return cls(
            config=config,
            worker_image=ImageSpec(
                names.worker_image,
                WORKER_FACTORY,
                "worker",
                config.worker_memory_mb,
                name_key=NAME_KEYS["worker_image"],
                extension=extension if has_extension else None,
            ),
            orchestrator_image=ImageSpec(
                names.orchestrator_image,
                ORCHESTRATOR_FACTORY,
                "orchestrator_app",
                config.orchestrator_memory_mb,
                name_key=NAME_KEYS["orchestrator_image"],
            ),
            names=names,
            owner=owner,
            agents=plan,
        )


def next_steps(
    missing: list[str], environment_id: str, webhook_url: str, webhook_mode: str
) -> list[str]:
    """Plain-language list of what the operator still has to do; empty when nothing (pure).

    `missing` holds only the secrets the dispatch mode needs (`StackConfig.secrets_missing`):
    in poll mode, the environment key alone.
    """
    steps = []
    if "cma:environmentKey" in missing:
        steps.append(
            f"Generate an environment key in the Claude Console for environment {environment_id}, "
            "then run `pulumi config set --secret cma:environmentKey <key>` and `pulumi up`."
        )
    if webhook_mode == "console" and "cma:webhookSigningSecret" in missing:
        steps.append(
            f"Register the webhook URL {webhook_url} in the Claude Console for the events "
            "session.status_run_started, session.status_terminated and session.deleted, copy "
            "its signing secret, then run "
            "`pulumi config set --secret cma:webhookSigningSecret <whsec_…>` and `pulumi up`."
        )
    return steps


class CmaBlaxelStack(pulumi.ComponentResource):
    """Everything: environment and agent, both images, the orchestrator and its webhook."""

    def __init__(
        self, name: str, args: CmaBlaxelStackArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cma:stack:CmaBlaxelStack", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.platform = AgentPlatform(
            f"{name}-platform",
            AgentPlatformArgs(
                environment_name=args.names.environment,
                agent_name=args.names.agent,
                owner=args.owner,
                model=cfg.model or DEFAULT_MODEL,
                system=cfg.agent_system,
                # The older single-agent keys keep the older agent inputs (no diff on upgrade).
                agents=[
                    {k: v for k, v in args.agents.create_payload(i).items() if v is not None}
                    for i in range(len(args.agents.agents))
                ]
                if args.agents and cfg.agents is not None
                else [],
                import_environment_id=cfg.import_environment_id,
                import_agent_id=cfg.import_agent_id,
                protect=cfg.protect,
            ),
            child,
        )
        self.images = SandboxImages(
            f"{name}-images",
            SandboxImagesArgs(args.worker_image, args.orchestrator_image, args.owner),
            child,
        )
        self.orchestrator = Orchestrator(
            f"{name}-orchestrator",
            OrchestratorArgs(
                anthropic_base_url=cfg.anthropic_base_url,
                blaxel_base_url=cfg.blaxel_base_url,
                blaxel_workspace=cfg.blaxel_workspace,
                blaxel_api_key=secret_output(cfg.blaxel_api_key),
                sandbox_name=args.names.orchestrator_sandbox,
                owner=args.owner,
                import_sandbox=cfg.import_orchestrator_sandbox,
                image=self.images.orchestrator_image,
                image_digest=self.images.orchestrator_digest,
                environment_id=self.platform.environment_id,
                worker_image=self.images.worker_image_for_sandboxes,
                environment_key=secret_output(cfg.environment_key),
                worker_proxy_secret=secret_output(cfg.worker_proxy_secret),
                dispatch_mode=cfg.dispatch_mode,
                webhook_mode=cfg.webhook_mode,
                webhook_signing_secret=secret_output(cfg.webhook_signing_secret),
                webhook_signing_secret_previous=secret_output(cfg.webhook_signing_secret_previous),
                region=cfg.region,
                memory_mb=cfg.orchestrator_memory_mb,
                worker=WorkerSettings(
                    memory_mb=cfg.worker_memory_mb,
                    region=cfg.worker_region,
                    idle_ttl=cfg.worker_idle_ttl,
                    max_age=cfg.worker_max_age,
                    max_idle_seconds=cfg.worker_max_idle_seconds,
                    keep_alive=cfg.worker_keep_alive,
                    max_lifetime_seconds=cfg.worker_max_lifetime_seconds,
                    environment_key_fallback=cfg.worker_environment_key_fallback,
                    recovery_poll_seconds=cfg.recovery_poll_seconds,
                    max_concurrent_starts=cfg.max_concurrent_starts,
                    proxy_destinations=cfg.proxy_destinations,
                    proxy_header=cfg.worker_proxy_header,
                    proxy_header_format=cfg.worker_proxy_header_format,
                    volume_size_mb=cfg.worker_volume_size_mb,
                    volume_mount_path=cfg.worker_volume_mount_path,
                ),
                outlived_by=[self.platform, self.images],
            ),
            child,
        )
        missing = cfg.secrets_missing
        self.outputs: dict[str, pulumi.Input[object]] = {
            "environment_id": self.platform.environment_id,
            "agent_id": self.platform.agent_id,
            "agent_version": self.platform.agent_version,
            # Per agent of cma:agents: {name: {id, version}}.
            "agents": self.platform.agents,
            "webhook_url": self.orchestrator.webhook_url,
            "orchestrator_sandbox": self.orchestrator.sandbox_name,
            "orchestrator_url": self.orchestrator.url,
            "orchestrator_revision": self.orchestrator.revision,
            "worker_image": self.images.worker_image,
            # Where the platforms are, for clients of the stack (e.g. examples/run_session.py).
            "anthropic_base_url": cfg.anthropic_base_url,
            "blaxel_base_url": cfg.blaxel_base_url,
            "orchestrator_image": self.images.orchestrator_image,
            # The bearer token of the orchestrator's /status and /metrics (secret).
            "status_token": self.orchestrator.status_token.token,
            "next_steps": pulumi.Output.all(
                self.platform.environment_id, self.orchestrator.webhook_url
            ).apply(lambda v: next_steps(missing, str(v[0]), str(v[1]), cfg.webhook_mode)),
        }
        self.register_outputs(self.outputs)
