"""The stack's configuration: one validated model built from `cma:` and `blaxel:` stack config.

Validation runs when the program starts, so `pulumi preview` fails fast; every error names
the config key and what is allowed. Secrets are `SecretStr` here and become secret Outputs
(`secret_output`) on their way to resources, so they are never plaintext in the state.
Credentials may also come from ANTHROPIC_API_KEY, BL_API_KEY and BL_WORKSPACE.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from infra.defaults import DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_BLAXEL_BASE_URL, ENV_FALLBACKS
from infra.names import sandbox_name_problem, scoped_name

NAMESPACES = ("cma", "blaxel")
REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DURATION = re.compile(r"\d+[smhdw]")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """The stack config is invalid; `problems` holds one line per key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


def _url(value: str) -> str:
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _sandbox_name(value: str | None) -> str | None:
    if value is not None and (problem := sandbox_name_problem(value)):
        raise ValueError(f"must be {problem}, got {value!r}")
    return value


def _prefixed(prefix: str, what: str) -> Any:
    def check(value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(prefix):
            raise ValueError(f"must be {what} (starts with {prefix!r})")
        return value

    return check


class StackConfig(BaseModel):
    """Everything the stack reads from config; field aliases are the config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # Anthropic (cma:)
    anthropic_base_url: str = Field(DEFAULT_ANTHROPIC_BASE_URL, alias="cma:anthropicBaseUrl")
    anthropic_api_key: SecretStr = Field(alias="cma:anthropicApiKey")
    # Unique names default to ones scoped to the project and stack (`names`, below).
    environment_name: str | None = Field(None, alias="cma:environmentName", min_length=1)
    environment_key: SecretStr | None = Field(None, alias="cma:environmentKey")
    # How the orchestrator learns of work: signed webhooks on a public preview URL, or
    # long-polling the environment's queue (no inbound endpoint, no webhook secret).
    dispatch_mode: Literal["webhook", "poll"] = Field("webhook", alias="cma:dispatchMode")
    webhook_mode: Literal["console", "api"] = Field("console", alias="cma:webhookMode")
    webhook_signing_secret: SecretStr | None = Field(None, alias="cma:webhookSigningSecret")
    webhook_signing_secret_previous: SecretStr | None = Field(
        None, alias="cma:webhookSigningSecretPrevious"
    )
    agent_name: str | None = Field(None, alias="cma:agentName", min_length=1)
    model: str | None = Field(None, alias="cma:model", min_length=1)  # default: claude-sonnet-4-6
    agent_system: str | None = Field(None, alias="cma:agentSystem")
    # Agents as code (infra/agent_stack.py validates them, with the tools and image they use).
    agents: Any = Field(None, alias="cma:agents")
    custom_tools_module: str | None = Field(None, alias="cma:customToolsModule")
    worker_image_extension: Any = Field(None, alias="cma:workerImage")
    recovery_poll_seconds: int = Field(15, alias="cma:recoveryPollSeconds", ge=1, le=3600)
    max_concurrent_starts: int = Field(8, alias="cma:maxConcurrentStarts", ge=1, le=256)
    # Take over existing resources by id on the next `up` (the orchestrator sandbox is always
    # taken over by name).
    import_environment_id: str | None = Field(
        None, alias="cma:importEnvironmentId", pattern=r"^env_\w+$"
    )
    import_agent_id: str | None = Field(None, alias="cma:importAgentId", pattern=r"^agent_\w+$")
    # `pulumi destroy` refuses while set (ResourceOptions.protect).
    protect: bool = Field(False, alias="cma:protect")
    # Blaxel (blaxel:)
    blaxel_base_url: str = Field(DEFAULT_BLAXEL_BASE_URL, alias="blaxel:baseUrl")
    blaxel_workspace: str = Field(alias="blaxel:workspace", min_length=1)
    blaxel_api_key: SecretStr = Field(alias="blaxel:apiKey")
    region: str | None = Field(None, alias="blaxel:region")
    orchestrator_sandbox_name: str | None = Field(None, alias="blaxel:orchestratorSandboxName")
    # Take over an existing sandbox of that name that this stack does not own yet.
    import_orchestrator_sandbox: bool = Field(False, alias="blaxel:importOrchestratorSandbox")
    orchestrator_memory_mb: int = Field(4096, alias="blaxel:orchestratorMemoryMb", ge=512, le=65536)
    orchestrator_image_name: str | None = Field(None, alias="blaxel:orchestratorImageName")
    worker_image_name: str | None = Field(None, alias="blaxel:workerImageName")
    worker_memory_mb: int = Field(4096, alias="blaxel:workerMemoryMb", ge=512, le=65536)
    worker_region: str | None = Field(None, alias="blaxel:workerRegion")
    # A worker sandbox lives across its session's turns: Blaxel deletes it after this long
    # unused (`ttl-idle`), or the orchestrator does when the session ends. A hard cap from
    # creation (`ttl-max-age`) is optional. Defaults: orchestrator_app/settings.py.
    worker_idle_ttl: str | None = Field(None, alias="blaxel:workerIdleTtl")
    worker_max_age: str | None = Field(None, alias="blaxel:workerMaxAge")
    # Removed (the reaper is gone): named in the error, with what replaces it.
    worker_idle_delete_seconds: Any = Field(None, alias="blaxel:workerIdleDeleteSeconds")
    # The worker process: exits this long after its session idles; keepAlive while it runs;
    # its max lifetime (0: none); the opt-in environment-key fallback (DESIGN §3).
    worker_max_idle_seconds: float | None = Field(None, alias="cma:workerMaxIdleSeconds", gt=0)
    worker_keep_alive: bool | None = Field(None, alias="cma:workerKeepAlive")
    worker_max_lifetime_seconds: int | None = Field(
        None, alias="cma:workerMaxLifetimeSeconds", ge=0
    )
    worker_environment_key_fallback: bool = Field(False, alias="cma:workerEnvironmentKeyFallback")
    # Worker features: a secret the sandbox network proxy injects toward some hosts, so the
    # worker never holds it; a persistent volume per session.
    worker_proxy_secret: SecretStr | None = Field(None, alias="blaxel:workerProxySecret")
    worker_proxy_destinations: str | None = Field(None, alias="blaxel:workerProxyDestinations")
    worker_proxy_header: str | None = Field(None, alias="blaxel:workerProxyHeader")
    worker_proxy_header_format: str | None = Field(None, alias="blaxel:workerProxyHeaderFormat")
    worker_volume_size_mb: int = Field(0, alias="blaxel:workerVolumeSizeMb", ge=0)
    worker_volume_mount_path: str | None = Field(None, alias="blaxel:workerVolumeMountPath")

    _urls = pydantic.field_validator("anthropic_base_url", "blaxel_base_url")(_url)
    _names = pydantic.field_validator(
        "orchestrator_sandbox_name", "orchestrator_image_name", "worker_image_name"
    )(_sandbox_name)
    _env_key = pydantic.field_validator("environment_key")(
        _prefixed("sk-ant-", "an environment key generated in the Console")
    )
    _whsec = pydantic.field_validator("webhook_signing_secret")(
        _prefixed("whsec_", "the webhook's signing secret shown by the Console")
    )

    @pydantic.field_validator("region", "worker_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not REGION.fullmatch(value):
            raise ValueError(f"must be a region name like 'us-pdx-1', got {value!r}")
        return value

    @pydantic.field_validator("worker_max_age", "worker_idle_ttl")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = DURATION.fullmatch(value)
        if not match:
            raise ValueError(f"must be a duration like '30m', '24h' or '7d', got {value!r}")
        if int(value[:-1]) * UNIT_SECONDS[value[-1]] < 300:
            raise ValueError(f"must be at least 5m (Blaxel's minimum TTL), got {value!r}")
        return value

    @pydantic.field_validator("worker_idle_delete_seconds")
    @classmethod
    def _removed(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "removed: a worker sandbox now lives across its session's turns and goes when "
                "the session ends; set blaxel:workerIdleTtl (Blaxel's idle TTL, e.g. '7d') "
                "and optionally blaxel:workerMaxAge instead, then unset this key"
            )
        return None

    @pydantic.field_validator("worker_proxy_header_format")
    @classmethod
    def _has_secret_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{secret}" not in value:
            raise ValueError(f"must contain '{{secret}}', e.g. 'Bearer {{secret}}', got {value!r}")
        return value

    @pydantic.field_validator("worker_volume_mount_path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value

    @pydantic.model_validator(mode="after")
    def _proxy_secret_needs_destinations(self) -> StackConfig:
        if self.worker_proxy_secret is not None and not self.proxy_destinations:
            raise ValueError(
                "blaxel:workerProxyDestinations: required with blaxel:workerProxySecret "
                "(comma-separated hosts the secret may be sent to)"
            )
        return self

    @property
    def proxy_destinations(self) -> list[str]:
        """blaxel:workerProxyDestinations as a list of hosts."""
        raw = self.worker_proxy_destinations or ""
        return [host.strip() for host in raw.split(",") if host.strip()]

    @pydantic.model_validator(mode="after")
    def _secret_only_in_console_mode(self) -> StackConfig:
        if self.webhook_mode == "api":
            # The organization webhooks API accepts only its own event types, not session.*
            # (DESIGN §3; docs/platform-contract.md): an `api` endpoint would never fire.
            raise ValueError(
                "cma:webhookMode: 'api' is refused while Anthropic's webhook endpoint API "
                "carries no session events (session.status_run_started cannot be subscribed "
                "there); use 'console' and register the webhook_url output in the Console"
            )
        if self.webhook_mode == "api" and self.webhook_signing_secret is not None:
            raise ValueError(
                "cma:webhookSigningSecret: only used with cma:webhookMode=console "
                "(in api mode the secret comes from the endpoint API); unset it"
            )
        return self

    def names(self, project: str, stack: str) -> StackNames:
        """The unique names to use: the configured ones, else scoped to project and stack."""
        return StackNames(
            environment=self.environment_name or scoped_name(project, stack, "env"),
            agent=self.agent_name or scoped_name(project, stack, "agent"),
            orchestrator_sandbox=self.orchestrator_sandbox_name
            or scoped_name(project, stack, "orch"),
            orchestrator_image=self.orchestrator_image_name
            or scoped_name(project, stack, "orch-img"),
            worker_image=self.worker_image_name or scoped_name(project, stack, "worker-img"),
        )

    def agent_values(self, default_agent_name: str) -> dict[str, Any]:
        """The agent keys as `infra.agent_stack.plan_agents` reads them: `cma:agents`, or the
        older single-agent keys (named by default after the stack)."""
        values: dict[str, Any] = {
            "cma:agents": self.agents,
            "cma:customToolsModule": self.custom_tools_module,
            "cma:workerImage": self.worker_image_extension,
            "cma:model": self.model,
            "cma:agentSystem": self.agent_system,
            "cma:agentName": self.agent_name,
        }
        if self.agents is None:
            values["cma:agentName"] = self.agent_name or default_agent_name
        return values

    @property
    def uses_webhooks(self) -> bool:
        """Whether the stack serves webhooks (a public preview and a webhook endpoint)."""
        return self.dispatch_mode == "webhook"

    @property
    def secrets_missing(self) -> list[str]:
        """Config keys of the secrets the orchestrator still lacks to be ready."""
        missing = [] if self.environment_key else ["cma:environmentKey"]
        if (
            self.uses_webhooks
            and self.webhook_mode == "console"
            and not self.webhook_signing_secret
        ):
            missing.append("cma:webhookSigningSecret")
        return missing


class StackNames(BaseModel):
    """The unique names of a stack's platform objects."""

    environment: str
    agent: str
    orchestrator_sandbox: str
    orchestrator_image: str
    worker_image: str


# The config key that sets each name: named in the error when the name is taken.
NAME_KEYS = {
    "environment": "cma:environmentName",
    "agent": "cma:agentName",
    "orchestrator_sandbox": "blaxel:orchestratorSandboxName",
    "orchestrator_image": "blaxel:orchestratorImageName",
    "worker_image": "blaxel:workerImageName",
}


def known_keys() -> set[str]:
    """Every config key the stack reads."""
    return {str(f.alias) for f in StackConfig.model_fields.values()}


def _problem(err: Any) -> str:
    loc = err.get("loc") or ()
    key = str(loc[0]) if loc else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        fallback = ENV_FALLBACKS.get(key)
        msg = "required" + (f" (or set {fallback})" if fallback else "")
    elif err["type"] == "literal_error":
        msg = f"must be one of {msg.removeprefix('Input should be ')}, got {err.get('input')!r}"
    if not key:  # model-level checks name their key themselves
        return msg
    return f"{key}: {msg}"


def _unknown_key(key: str) -> str:
    """The problem line of an unknown key: the closest known one, else all of them."""
    close = difflib.get_close_matches(key, sorted(known_keys()), n=1, cutoff=0.75)
    if not close:  # case slips ("cma:Model") are typos too
        lowered = {k.lower(): k for k in known_keys()}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    if close:
        return f"{key}: not a known key; did you mean {close[0]}?"
    return f"{key}: not a known key (known: {', '.join(sorted(known_keys()))})"


def load_stack_config(values: Mapping[str, Any], env: Mapping[str, str]) -> StackConfig:
    """Validate `values` (full keys like 'cma:model'), filling credentials from `env` (pure)."""
    unknown = sorted(k for k in values if k.split(":")[0] in NAMESPACES and k not in known_keys())
    problems = [_unknown_key(k) for k in unknown]
    data = {k: v for k, v in values.items() if k in known_keys() and v not in (None, "")}
    for key, var in ENV_FALLBACKS.items():
        if key not in data and env.get(var):
            data[key] = env[var]
    try:
        config = StackConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(problems + [_problem(e) for e in exc.errors()]) from None
    if problems:
        raise ConfigError(problems)
    return config


def read_stack_config() -> StackConfig:
    """The stack's config from the Pulumi runtime and the process environment."""
    import os

    import pulumi
    from pulumi.runtime.config import CONFIG

    values: dict[str, Any] = {
        k: v for k, v in CONFIG.get().items() if k.split(":")[0] in NAMESPACES
    }
    for key in known_keys():
        namespace, name = key.split(":", 1)
        value = pulumi.Config(namespace).get(name)
        if value is not None:
            values[key] = value
    return load_stack_config(values, os.environ)


def secret_output(value: SecretStr | None) -> Any:
    """A secret Output of a secret (an empty string when unset), never a plain string."""
    import pulumi

    return pulumi.Output.secret(value.get_secret_value() if value else "")
