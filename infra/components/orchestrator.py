"""The orchestrator: its sandbox and public preview, the webhook registered on the preview's
URL, and the server process started with the webhook's signing secret.

The sandbox/server split breaks the cycle URL → webhook → secret → server (DESIGN §2): the
sandbox and its URL exist first, the webhook is registered on the URL, the server is
(re)started with the secret, all in one `pulumi up`.

In poll mode (`cma:dispatchMode: poll`) there is no public preview and no webhook: the server
long-polls the work queue, and `up` reaches it through the sandbox API. Switching modes
updates the same sandbox in place (the preview goes, or comes back under the same name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pulumi

from infra.config import NAME_KEYS
from infra.names import Owner, suffixed_name
from infra.providers.sandbox import OrchestratorSandbox
from infra.providers.server import OrchestratorServer
from infra.providers.token import GeneratedToken
from infra.providers.webhook import WebhookEndpoint, webhook_url
from infra.providers.workers import WorkerCleanup
from orchestrator_app.boot import SERVER_REQUEST_PATH, STATE_MOUNT_PATH


@dataclass
class WorkerSettings:
    """How the orchestrator starts worker sandboxes."""

    memory_mb: int = 4096
    region: str | None = None
    # None: the orchestrator's own default (orchestrator_app/settings.py, one home).
    idle_ttl: str | None = None
    max_age: str | None = None
    max_idle_seconds: float | None = None
    keep_alive: bool | None = None
    max_lifetime_seconds: int | None = None
    environment_key_fallback: bool = False
    recovery_poll_seconds: int = 15
    max_concurrent_starts: int = 8
    proxy_destinations: list[str] = field(default_factory=list)
    proxy_header: str | None = None
    proxy_header_format: str | None = None
    volume_size_mb: int = 0
    volume_mount_path: str | None = None


@dataclass
class OrchestratorArgs:
    """Everything the orchestrator needs; keys and secrets as (secret) Outputs.

    The platforms' URLs and the Blaxel key are the server's settings (it calls both APIs);
    no resource other than the server takes them.
    """

    anthropic_base_url: str
    blaxel_base_url: str
    blaxel_workspace: str
    blaxel_api_key: pulumi.Input[str]  # secret
    sandbox_name: pulumi.Input[str]
    owner: Owner
    image: pulumi.Input[str]
    image_digest: pulumi.Input[str]
    environment_id: pulumi.Input[str]
    worker_image: pulumi.Input[str]
    environment_key: pulumi.Input[str]  # secret; "" until set
    worker_proxy_secret: pulumi.Input[str] = ""  # secret; optional
    dispatch_mode: Literal["webhook", "poll"] = "webhook"
    webhook_mode: Literal["console", "api"] = "console"
    webhook_signing_secret: pulumi.Input[str] = ""  # secret; console mode only
    # The secret being rotated out, still accepted by the app during a rotation (issue 18).
    webhook_signing_secret_previous: pulumi.Input[str] = ""  # secret; optional
    import_sandbox: bool = False
    region: str | None = None
    memory_mb: int = 4096
    port: int = 8000  # not 80, 443 or 8080: Blaxel reserves them (docs "Sandboxes/Ports")
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    # Resources to outlive the public endpoint on destroy (it is taken down first).
    outlived_by: list[pulumi.Resource] = field(default_factory=list)


def _opt(value: object) -> str | None:
    """A setting's env value, or None to leave it to the app's default (bools as true/false)."""
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def server_settings(
    args: OrchestratorArgs, environment_id: str, worker_image: str
) -> dict[str, str]:
    """The orchestrator's non-secret ORCH_* environment (docs/contracts.md) (pure).

    ORCH_PORT is left out on purpose: the app falls back to the platform's PORT (the emulator
    backs each sandbox port with another host port and says which in PORT), else 8000.
    """
    w = args.worker
    settings = {
        "ORCH_ENVIRONMENT_ID": environment_id,
        "ORCH_ANTHROPIC_BASE_URL": args.anthropic_base_url,
        "ORCH_BLAXEL_BASE_URL": args.blaxel_base_url,
        "ORCH_BLAXEL_WORKSPACE": args.blaxel_workspace,
        "ORCH_WORKER_IMAGE": worker_image,
        "ORCH_WORKER_MEMORY_MB": str(w.memory_mb),
        "ORCH_WORKER_ENVIRONMENT_KEY_FALLBACK": str(w.environment_key_fallback).lower(),
        "ORCH_RECOVERY_POLL_SECONDS": str(w.recovery_poll_seconds),
        "ORCH_MAX_CONCURRENT_STARTS": str(w.max_concurrent_starts),
        "DO_NOT_TRACK": "1",
    }
    region = w.region or args.region
    if region:
        settings["ORCH_WORKER_REGION"] = region
    if args.dispatch_mode != "webhook":  # the app's default; unset keeps older stacks' settings
        settings["ORCH_DISPATCH_MODE"] = args.dispatch_mode
    optional = {
        "ORCH_WORKER_IDLE_TTL": w.idle_ttl,
        "ORCH_WORKER_MAX_AGE": w.max_age,
        "ORCH_WORKER_MAX_IDLE_SECONDS": _opt(w.max_idle_seconds),
        "ORCH_WORKER_KEEP_ALIVE": _opt(w.keep_alive),
        "ORCH_WORKER_MAX_LIFETIME_SECONDS": _opt(w.max_lifetime_seconds),
        # pydantic-settings reads list settings as JSON.
        "ORCH_WORKER_PROXY_DESTINATIONS": json.dumps(w.proxy_destinations)
        if w.proxy_destinations
        else None,
        "ORCH_WORKER_PROXY_HEADER": w.proxy_header,
        "ORCH_WORKER_PROXY_HEADER_FORMAT": w.proxy_header_format,
        "ORCH_WORKER_VOLUME_SIZE_MB": str(w.volume_size_mb) if w.volume_size_mb else None,
        "ORCH_WORKER_VOLUME_MOUNT_PATH": w.volume_mount_path,
    }
    settings.update({k: v for k, v in optional.items() if v})
    return settings


def server_secrets(
    environment_key: str,
    signing_secret: str,
    blaxel_api_key: str,
    proxy_secret: str = "",
    status_token: str = "",
    signing_secret_previous: str = "",
) -> dict[str, str]:
    """The orchestrator's secret ORCH_* environment; unset ones are empty or absent (pure)."""
    secrets = {
        "ORCH_ENVIRONMENT_KEY": environment_key or "",
        "ORCH_WEBHOOK_SIGNING_SECRET": signing_secret or "",
        "ORCH_BLAXEL_API_KEY": blaxel_api_key or "",
    }
    optional = {
        "ORCH_WORKER_PROXY_SECRET": proxy_secret,
        "ORCH_STATUS_TOKEN": status_token,
        "ORCH_WEBHOOK_SIGNING_SECRET_PREVIOUS": signing_secret_previous,
    }
    secrets.update({k: v for k, v in optional.items() if v})
    return secrets


class Orchestrator(pulumi.ComponentResource):
    """Sandbox + public preview, webhook endpoint, server process."""

    sandbox_name: pulumi.Output[str]
    url: pulumi.Output[str]
    webhook_url: pulumi.Output[str]
    revision: pulumi.Output[int]

    def __init__(
        self, name: str, args: OrchestratorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cma:orchestrator:Orchestrator", name, None, opts)
        webhooks = args.dispatch_mode == "webhook"
        self.sandbox = OrchestratorSandbox(
            f"{name}-sandbox",
            {
                "sandbox_name": args.sandbox_name,
                "image": args.image,
                "image_digest": args.image_digest,
                "region": args.region,
                "memory_mb": args.memory_mb,
                "port": args.port,
                "preview_name": "public" if webhooks else "",
                "labels": {"managed-by": "cma-blaxel"},
                "owner": {"project": args.owner.project, "stack": args.owner.stack},
                "name_key": NAME_KEYS["orchestrator_sandbox"],
                # What brings the server back by itself after Blaxel rebuilds the sandbox.
                "state_volume": pulumi.Output.from_input(args.sandbox_name).apply(
                    lambda n: suffixed_name(str(n), "state")
                ),
                "state_mount_path": STATE_MOUNT_PATH,
                "state_file": SERVER_REQUEST_PATH,
                "adopt": args.import_sandbox,
                **_timeout_input("deploy_timeout_s", opts, "create"),
            },
            pulumi.ResourceOptions(parent=self, depends_on=list(args.outlived_by)),
        )
        self.webhook = (
            WebhookEndpoint(
                f"{name}-webhook",
                {
                    "mode": args.webhook_mode,
                    "url": self.sandbox.url.apply(webhook_url),
                    "signing_secret": (
                        pulumi.Output.secret(args.webhook_signing_secret)
                        if args.webhook_mode == "console"
                        else None
                    ),
                },
                pulumi.ResourceOptions(parent=self),
            )
            if webhooks
            else None
        )
        signing_secret: pulumi.Input[str] = self.webhook.signing_secret if self.webhook else ""
        settings = pulumi.Output.all(args.environment_id, args.worker_image).apply(
            lambda v: server_settings(args, str(v[0]), str(v[1]))
        )
        self.status_token = GeneratedToken(
            f"{name}-status-token",
            {"purpose": "orchestrator-status"},
            pulumi.ResourceOptions(parent=self),
        )
        # Deleted after the server (which depends on it) and before the environment.
        self.worker_cleanup = WorkerCleanup(
            f"{name}-workers",
            {"environment_id": args.environment_id},
            pulumi.ResourceOptions(parent=self),
        )
        secret_values: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            args.environment_key,
            signing_secret,
            args.blaxel_api_key,
            args.worker_proxy_secret,
            self.status_token.token,
            args.webhook_signing_secret_previous if webhooks else "",
        ).apply(lambda v: server_secrets(*(str(x or "") for x in v)))
        secrets = pulumi.Output.secret(cast(Any, secret_values))
        self.server = OrchestratorServer(
            f"{name}-server",
            {
                "sandbox_name": self.sandbox.sandbox_name,
                "sandbox_spec_digest": self.sandbox.spec_digest,
                "url": self.sandbox.url,
                "settings": settings,
                "secrets": secrets,
                "image_digest": args.image_digest,
                **({} if webhooks else {"private_port": args.port}),
                "state_file": SERVER_REQUEST_PATH,
                **_timeout_input("health_timeout_s", opts, "update"),
            },
            pulumi.ResourceOptions(
                parent=self,
                depends_on=[*([self.webhook] if self.webhook else []), self.worker_cleanup],
            ),
        )
        self.sandbox_name = self.sandbox.sandbox_name
        self.url = self.sandbox.url
        self.webhook_url = self.webhook.url if self.webhook else pulumi.Output.from_input("")
        self.revision = self.server.revision
        outputs: dict[str, Any] = {
            "sandbox_name": self.sandbox_name,
            "url": self.url,
            "webhook_url": self.webhook_url,
            "revision": self.revision,
        }
        self.register_outputs(outputs)


def _timeout_input(
    field_name: str, opts: pulumi.ResourceOptions | None, which: Literal["create", "update"]
) -> dict[str, float]:
    """A provider wait bound from `customTimeouts` (the dynamic host does not pass them on)."""
    timeouts = opts.custom_timeouts if opts else None
    raw = getattr(timeouts, which, None) if timeouts else None
    seconds = parse_duration(raw) if raw else None
    return {field_name: seconds} if seconds else {}


def parse_duration(value: str) -> float | None:
    """Pulumi's custom-timeout strings ("90s", "5m", "1h", "1h30m") in seconds (pure)."""
    total, number = 0.0, ""
    for char in value.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in "smh" and number:
            total += float(number) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
        else:
            return None
    return total if total and not number else None
