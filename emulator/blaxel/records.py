"""The records the backend keeps, and how the API shows them (the SDK's models, as JSON)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulator.blaxel.images import Layout
from emulator.blaxel.processes import ProcessTable
from emulator.blaxel.specs import masked


def iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


@dataclass
class Preview:
    name: str
    sandbox: str
    spec: dict[str, Any]  # as submitted, plus `url`
    created_at: float

    @property
    def port(self) -> int:
        return int(self.spec["port"])

    @property
    def public(self) -> bool:
        return bool(self.spec.get("public", False))

    def to_dict(self, workspace: str, status: str = "DEPLOYED") -> dict[str, Any]:
        return {
            "metadata": {
                "name": self.name,
                "displayName": self.name,
                "resourceName": self.sandbox,
                "resourceType": "sandbox",
                "workspace": workspace,
                "createdAt": iso(self.created_at),
                "updatedAt": iso(self.created_at),
            },
            "spec": dict(self.spec),
            "status": status,
        }


@dataclass
class Sandbox:
    name: str
    metadata: dict[str, Any]  # labels, displayName, externalId as submitted
    spec: dict[str, Any]  # with env values in clear: never returned as is
    root: Path  # the sandbox's filesystem
    created_at: float
    status: str = "DEPLOYING"
    updated_at: float = 0.0
    last_used_at: float = 0.0
    ports: dict[int, int] = field(default_factory=dict)  # sandbox port -> host port
    layout: Layout = field(default_factory=Layout)
    processes: ProcessTable = field(default_factory=ProcessTable)
    previews: dict[str, Preview] = field(default_factory=dict)
    terminated_at: float | None = None
    upload_token: str | None = None
    ready_at: float | None = None  # monotonic time at which DEPLOYING becomes DEPLOYED
    gone_at: float | None = None  # monotonic time at which DELETING becomes TERMINATED
    standby: bool = False  # in standby: the next sandbox API call wakes it, and fails once
    local_token: str = ""  # names the sandbox in its boot process's local API URL

    @property
    def alive(self) -> bool:
        return self.status != "TERMINATED"

    def to_dict(self, workspace: str, url: str, expires_in: float | None) -> dict[str, Any]:
        metadata = {
            "name": self.name,
            "displayName": self.metadata.get("displayName") or self.name,
            "labels": dict(self.metadata.get("labels") or {}),
            "url": url,
            "workspace": workspace,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at or self.created_at),
            "createdBy": "emulator",
            "updatedBy": "emulator",
        }
        if self.metadata.get("externalId"):
            metadata["externalId"] = self.metadata["externalId"]
        body: dict[str, Any] = {
            "metadata": metadata,
            "spec": masked(self.spec),
            "status": self.status,
            "lastUsedAt": iso(self.last_used_at or self.created_at),
        }
        if self.alive and self.status != "DELETING":
            body["state"] = "STANDBY" if self.standby else "RUNNING"
        if expires_in is not None:
            body["expiresIn"] = max(0, math.ceil(expires_in))
        return body


@dataclass
class Volume:
    name: str
    spec: dict[str, Any]
    path: Path
    created_at: float
    attached_to: str = ""  # "sandbox:<name>" while a live sandbox mounts it
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self, workspace: str, status: str = "DEPLOYED") -> dict[str, Any]:
        return {
            "metadata": {
                "name": self.name,
                "displayName": self.name,
                "labels": dict(self.labels),
                "workspace": workspace,
                "createdAt": iso(self.created_at),
                "updatedAt": iso(self.created_at),
            },
            "spec": dict(self.spec),
            "state": {"attachedTo": self.attached_to},
            "status": status,
        }


@dataclass(frozen=True)
class ImagePush:
    """Inspection: one uploaded build context."""

    sandbox: str
    bytes: int
    at: float


@dataclass(frozen=True)
class ProcessStart:
    """Inspection: one process started in a sandbox (env names only, never values)."""

    sandbox: str
    name: str
    command: str
    env_names: tuple[str, ...]
    working_dir: str
    at: float


@dataclass(frozen=True)
class DeletedSandbox:
    """Inspection: a sandbox that went away, and why ('deleted' or 'expired')."""

    name: str
    reason: str
    at: float
