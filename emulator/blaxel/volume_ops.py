"""Volume operations, and the workspace configuration (regions)."""

from __future__ import annotations

import shutil
from typing import Any

from emulator.blaxel import specs
from emulator.blaxel.exceptions import BadRequest, Conflict, NotFound
from emulator.blaxel.records import Volume
from emulator.blaxel.state import BlaxelState


class VolumeOps(BlaxelState):
    """create_volume, get_volume, list_volumes, delete_volume, configuration."""

    def create_volume(self, body: dict[str, Any]) -> Volume:
        metadata = body.get("metadata") or {}
        name = specs.validate_sandbox_name(metadata.get("name"))
        spec = dict(body.get("spec") or {})
        region = spec.get("region")
        if region is not None and region not in self.config.regions:
            raise BadRequest(f"spec.region: unknown region {region!r}", code="INVALID_REGION")
        labels = metadata.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise BadRequest("metadata.labels: must map strings to strings")
        with self._lock:
            if name in self.volumes:
                raise Conflict(f"Volume '{name}' already exists", code="VOLUME_ALREADY_EXISTS")
            path = self.root / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            volume = Volume(name, spec, path, self.now(), labels=dict(labels))
            self.volumes[name] = volume
        return volume

    def configuration(self) -> dict[str, Any]:
        """`GET /v0/configuration`: the regions this workspace may use, proxy availability."""
        regions = [
            {
                "name": region,
                "allowed": "true",
                "proxyAvailable": True,
                "egressAvailable": True,
                "drivesAvailable": False,
            }
            for region in self.config.regions
        ]
        return {"regions": regions, "continents": [], "countries": [], "privateLocations": []}

    def get_volume(self, name: str) -> Volume:
        volume = self.volumes.get(name)
        if volume is None:
            raise NotFound(f"Volume '{name}' not found", code="VOLUME_NOT_FOUND")
        return volume

    def list_volumes(self) -> list[Volume]:
        return sorted(self.volumes.values(), key=lambda v: v.name)

    def delete_volume(self, name: str) -> Volume:
        with self._lock:  # the check and the removal at once: no attach in between
            volume = self.get_volume(name)
            if volume.attached_to:
                raise BadRequest(
                    f"Volume '{name}' is attached to {volume.attached_to}", code="VOLUME_ATTACHED"
                )
            del self.volumes[name]
        shutil.rmtree(volume.path, ignore_errors=True)
        return volume
