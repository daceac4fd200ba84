"""The orchestrator's settings: read from the environment (prefix ORCH_, docs/contracts.md) on demand.

Built explicitly with `Settings.from_env()` (never at import time), so tests and the emulator
pass their own values. Secrets are `SecretStr` and may be missing: the app still serves
`/health`, and `/ready` names what is missing (`missing()`).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from standardwebhooks.webhooks import Webhook

# Blaxel expiration-policy durations: a number and a unit; ttl-max-age must be at least 5m.
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_MAX_AGE_SECONDS = 300


def duration_seconds(value: str) -> int:
    """Seconds in a Blaxel duration such as '30m' or '7d'; ValueError when it is not one."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like '30m', '24h' or '7d'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _default_port() -> int:
    # The sandbox runtime tells a process its port in PORT; ORCH_PORT overrides it.
    raw = os.environ.get("PORT", "")
    return int(raw) if raw.isdigit() else 8000  # Blaxel reserves 80, 443 and 8080


class Settings(BaseSettings):
    """Everything the orchestrator process is told; see docs/contracts.md for the names."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", frozen=True)

    # Anthropic: the self-hosted environment this orchestrator serves.
    environment_id: str | None = None
    environment_key: SecretStr | None = None
    webhook_signing_secret: SecretStr | None = None
    anthropic_base_url: AnyHttpUrl = AnyHttpUrl("https://api.anthropic.com")

    # Blaxel: where worker sandboxes are made.
    blaxel_base_url: AnyHttpUrl = AnyHttpUrl("https://api.blaxel.ai/v0")
    blaxel_api_key: SecretStr | None = None
    blaxel_workspace: str | None = None

    # Worker sandboxes.
    worker_image: str | None = None
    worker_memory_mb: Annotated[int, Field(ge=512)] = 4096
    worker_region: str | None = None
    # A worker sandbox lives across turns (standby between them) and is deleted when its
    # session ends, or after this long without use (Blaxel `ttl-idle`): a week keeps a
    # conversation's /workspace for a user who comes back, at standby's (storage-only) cost.
    worker_idle_ttl: str = "7d"
    # Optional hard cap from creation (Blaxel `ttl-max-age`, at least 5m); unset: none.
    worker_max_age: str | None = None
    # Worker timing: the worker process exits this long after its session idles (the SDK's
    # max_idle); keepAlive holds the sandbox out of standby while it runs; its max lifetime
    # (the process `timeout`, seconds, 0 = none).
    worker_max_idle_seconds: Annotated[float, Field(gt=0)] = 60.0
    worker_keep_alive: bool = True
    worker_max_lifetime_seconds: Annotated[int, Field(ge=0)] = 0
    # Off by default: a work item whose secret carries no sessions token is stopped. On: its
    # worker gets the environment key instead (it then holds a long-lived credential).
    worker_environment_key_fallback: bool = False
    worker_workdir: str = "/app"  # the worker image's working dir, where `python -m worker` runs
    # Optional: a secret the sandbox's network proxy injects as a header toward these hosts.
    worker_proxy_secret: SecretStr | None = None
    worker_proxy_destinations: list[str] = Field(default_factory=list)
    worker_proxy_header: str = "Authorization"
    worker_proxy_header_format: str = "Bearer {secret}"
    # Optional: a persistent volume per session, mounted here (size in MB; 0 = no volume).
    worker_volume_size_mb: Annotated[int, Field(ge=0)] = 0
    worker_volume_mount_path: str = "/workspace"

    # Webhook bodies above this are refused (413) unread: an event is a few hundred bytes.
    webhook_max_body_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024

    # Dispatch. `webhook`: run-started deliveries trigger drains (a public endpoint and a signing
    # secret needed). `poll` (issue 18): the orchestrator long-polls its queue instead, with
    # `poll_block_ms` per poll (the API's bound: 1..999, SDK `work.poll` params); no endpoint,
    # no signing secret.
    dispatch_mode: Literal["webhook", "poll"] = "webhook"
    poll_block_ms: Annotated[int, Field(ge=1, le=999)] = 999
    recovery_poll_seconds: Annotated[float, Field(ge=0)] = 15.0  # 0 turns recovery off
    max_concurrent_starts: Annotated[int, Field(ge=1)] = 8
    start_retries: Annotated[int, Field(ge=0)] = 4
    retry_base_seconds: Annotated[float, Field(ge=0)] = 0.5
    sandbox_ready_timeout_seconds: Annotated[float, Field(gt=0)] = 180.0
    # A run-started delivery can precede its pollable item: re-list this often, this many times.
    empty_drain_retries: Annotated[int, Field(ge=0)] = 5
    empty_drain_retry_seconds: Annotated[float, Field(gt=0)] = 1.0
    # The janitor: reconcile worker sandboxes x worker processes x sessions this often.
    janitor_interval_seconds: Annotated[float, Field(gt=0)] = 60.0

    # Operating (issue 15, issue 18's rotation). `/status`, `/metrics` and `/ready`'s details
    # need `Authorization: Bearer <status_token>` (the stack's `status_token` output); unset,
    # they answer 401 to everyone. While a signing secret is rotated, deliveries signed with the
    # previous one are still accepted.
    status_token: SecretStr | None = None
    webhook_signing_secret_previous: SecretStr | None = None

    @field_validator("status_token", "webhook_signing_secret_previous", mode="before")
    @classmethod
    def _empty_operating_secret_is_missing(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("webhook_signing_secret_previous")
    @classmethod
    def _previous_is_a_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Refused at startup (naming the variable), not later as a 503 on every delivery.
        if value is not None:
            try:
                Webhook(value.get_secret_value())
            except Exception as exc:
                raise ValueError("must be a Standard Webhooks key (whsec_<base64>)") from exc
        return value

    def signing_secrets(self) -> list[str]:
        """The signing secrets a delivery may be signed with: the current one, then the previous."""
        held = (self.webhook_signing_secret, self.webhook_signing_secret_previous)
        return [s.get_secret_value() for s in held if s is not None]

    host: str = "0.0.0.0"  # the preview proxies to it; tests bind 127.0.0.1
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default_factory=_default_port)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls) -> Settings:
        """Settings read from the process environment now."""
        return cls()

    @field_validator("worker_max_age", mode="before")
    @classmethod
    def _max_age_is_a_duration(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if isinstance(value, str) and duration_seconds(value) < MIN_MAX_AGE_SECONDS:
            raise ValueError("must be at least 5m (Blaxel's minimum for ttl-max-age)")
        return value

    @field_validator("worker_idle_ttl")
    @classmethod
    def _idle_ttl_is_a_duration(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @field_validator("worker_proxy_header_format")
    @classmethod
    def _has_secret_placeholder(cls, value: str) -> str:
        try:
            formatted = value.format(secret="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"must be a format with only {{secret}}: {exc}") from exc
        if formatted == value:
            raise ValueError("must contain {secret}, e.g. 'Bearer {secret}'")
        return value

    @field_validator("worker_volume_mount_path", "worker_workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("environment_key", "webhook_signing_secret", "blaxel_api_key", mode="before")
    @classmethod
    def _empty_secret_is_missing(cls, value: object) -> object:
        # An empty env var (`ORCH_ENVIRONMENT_KEY=`) means "not set", not "the empty key".
        return None if value == "" else value

    @field_validator("environment_id", "blaxel_workspace", "worker_image", "worker_region")
    @classmethod
    def _empty_is_missing(cls, value: str | None) -> str | None:
        return value or None

    @property
    def anthropic_url(self) -> str:
        """The Anthropic base URL without a trailing slash."""
        return str(self.anthropic_base_url).rstrip("/")

    @property
    def blaxel_url(self) -> str:
        """The Blaxel control-plane URL without a trailing slash."""
        return str(self.blaxel_base_url).rstrip("/")

    def secret_values(self) -> list[str]:
        """Every secret this process holds, for the log redactor."""
        secrets = (
            self.environment_key,
            self.webhook_signing_secret,
            self.blaxel_api_key,
            self.worker_proxy_secret,
            self.status_token,
            self.webhook_signing_secret_previous,
        )
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]

    def missing(self) -> list[str]:
        """What must still be set before the orchestrator can do its job, in words."""
        # In poll mode nothing is delivered to us: no signing secret is needed.
        signing: list[tuple[object, str]] = (
            [
                (
                    self.webhook_signing_secret,
                    "webhook signing secret not set (ORCH_WEBHOOK_SIGNING_SECRET)",
                )
            ]
            if self.dispatch_mode == "webhook"
            else []
        )
        checks = [
            (self.environment_id, "environment id not set (ORCH_ENVIRONMENT_ID)"),
            (self.environment_key, "environment key not set (ORCH_ENVIRONMENT_KEY)"),
            *signing,
            (self.blaxel_api_key, "Blaxel API key not set (ORCH_BLAXEL_API_KEY)"),
            (self.blaxel_workspace, "Blaxel workspace not set (ORCH_BLAXEL_WORKSPACE)"),
            (self.worker_image, "worker image not set (ORCH_WORKER_IMAGE)"),
        ]
        return [problem for value, problem in checks if not value]
