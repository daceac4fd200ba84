"""The backend's records and their API renderings (pure: each `to_api` builds the response body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.anthropic.common import iso

ORGANIZATION_ID = "org_01EmulatorOrganization0000"
WORKSPACE_ID = "wrkspc_01EmulatorWorkspace00000"


@dataclass
class Environment:
    id: str
    name: str
    config: dict[str, Any]
    description: str | None
    metadata: dict[str, str]
    scope: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "type": "environment",
            "id": self.id,
            "name": self.name,
            "config": self.config,
            "description": self.description,
            "metadata": dict(self.metadata),
            "scope": self.scope,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "archived_at": iso(self.archived_at) if self.archived_at else None,
        }


@dataclass
class Agent:
    """An agent and every version it has had; `versions[-1]` is the current one."""

    id: str
    created_at: datetime
    versions: list[dict[str, Any]] = field(default_factory=list)
    archived_at: datetime | None = None

    @property
    def version(self) -> int:
        return len(self.versions)

    def to_api(self, version: int | None = None) -> dict[str, Any]:
        snapshot = self.versions[(version or self.version) - 1]
        return {
            "type": "agent",
            "id": self.id,
            **snapshot,
            "created_at": iso(self.created_at),
            "archived_at": iso(self.archived_at) if self.archived_at else None,
        }

    def session_view(self, version: int) -> dict[str, Any]:
        """The agent as a session embeds it (no metadata or timestamps)."""
        snapshot = self.versions[version - 1]
        keep = ("name", "description", "model", "system", "tools", "mcp_servers", "skills")
        view = {key: snapshot[key] for key in keep}
        view.update(
            type="agent",
            id=self.id,
            version=version,
            execution_identity=snapshot["execution_identity"],
            multiagent=snapshot.get("multiagent"),
        )
        return view


@dataclass
class Session:
    id: str
    agent: dict[str, Any]
    environment_id: str
    metadata: dict[str, str]
    title: str | None
    resources: list[dict[str, Any]]
    vault_ids: list[str]
    created_at: datetime
    updated_at: datetime
    status: str = "idle"
    archived_at: datetime | None = None
    deleted: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    # Required-nullable in the TypeScript and Go SDKs: always present, null when unset.
    budget: dict[str, Any] | None = None
    # Its item was stopped before the worker's first heartbeat: never offered work again.
    stranded: bool = False

    def to_api(self, now: datetime) -> dict[str, Any]:
        return {
            "type": "session",
            "id": self.id,
            "budget": self.budget,
            "agent": self.agent,
            "environment_id": self.environment_id,
            "metadata": dict(self.metadata),
            "title": self.title,
            "resources": self.resources,
            "vault_ids": list(self.vault_ids),
            "status": self.status,
            "outcome_evaluations": [],
            "stats": {
                "active_seconds": 0.0,
                "duration_seconds": (now - self.created_at).total_seconds(),
            },
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0},
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "archived_at": iso(self.archived_at) if self.archived_at else None,
        }


@dataclass
class WorkItem:
    """A unit of queued work: one session to serve in a self-hosted environment.

    Lease life: queued → (polled: pending) → ack: starting → heartbeat: active →
    stop: stopping/stopped. An item whose lease lapses goes back to queued.
    """

    id: str
    environment_id: str
    session_id: str
    created_at: datetime
    state: str = "queued"
    metadata: dict[str, str] = field(default_factory=dict)
    polled_at: datetime | None = None
    polled_by: str | None = None
    acknowledged_at: datetime | None = None
    started_at: datetime | None = None
    last_heartbeat: str | None = None  # the exact stamp a worker must echo back
    lease_ttl: int = 0
    lease_expires_at: datetime | None = None
    stop_requested_at: datetime | None = None
    stopped_at: datetime | None = None
    sessions_token: str | None = None  # the bearer inside the current secret
    pollable_at: datetime | None = None  # a new item is offered only from then on

    @property
    def pending(self) -> bool:
        """Polled but not yet acknowledged."""
        return self.state == "queued" and self.polled_at is not None

    def lease_state(self) -> dict[str, Any]:
        return {
            "last_heartbeat": self.last_heartbeat,
            "lease_extended": False,
            "state": self.state,
            "ttl_seconds": self.lease_ttl,
        }

    def to_api(self, secret: str | None = None) -> dict[str, Any]:
        return {
            "type": "work",
            "id": self.id,
            "environment_id": self.environment_id,
            "data": {"type": "session", "id": self.session_id},
            "state": self.state,
            "metadata": dict(self.metadata),
            "secret": secret,
            "created_at": iso(self.created_at),
            "acknowledged_at": iso(self.acknowledged_at) if self.acknowledged_at else None,
            "started_at": iso(self.started_at) if self.started_at else None,
            "latest_heartbeat_at": self.last_heartbeat,
            "stop_requested_at": iso(self.stop_requested_at) if self.stop_requested_at else None,
            "stopped_at": iso(self.stopped_at) if self.stopped_at else None,
        }


@dataclass
class WebhookEndpoint:
    """A registered receiver: a workspace endpoint (Console) or an organization one (API)."""

    id: str
    kind: str  # "workspace" | "organization"
    url: str
    events: list[str]
    secret: str
    created_at: datetime
    updated_at: datetime
    name: str = ""
    description: str = ""
    state: str = "enabled"

    def console_view(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events)}

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "name": self.name,
            "description": self.description,
            "enabled_events": list(self.events),
            "state": self.state,
            "disabled_reason": "",
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class Delivery:
    """One webhook message to one endpoint, with every attempt made to deliver it."""

    endpoint_id: str
    url: str
    webhook_id: str
    event_type: str
    session_id: str | None
    body: str
    forced: bool = False  # a Console redelivery (a deliberate duplicate)
    attempts: list[str] = field(default_factory=list)  # HTTP status or error name per attempt
    delivered: bool = False
    given_up: bool = False
