"""Preview operations: a named public or private URL on one sandbox port."""

from __future__ import annotations

from typing import Any

from emulator.blaxel import specs
from emulator.blaxel.exceptions import BadRequest, Conflict, NotFound
from emulator.blaxel.records import Preview, Sandbox
from emulator.blaxel.sandbox_ops import SandboxOps
from emulator.blaxel.state import free_port


class PreviewOps(SandboxOps):
    """create_preview, get_preview, list_previews, update_preview, delete_preview, preview_target."""

    def create_preview(self, sandbox_name: str, body: dict[str, Any]) -> Preview:
        sandbox = self._live(sandbox_name)
        name = (body.get("metadata") or {}).get("name")
        spec = dict(body.get("spec") or {})
        if not isinstance(name, str) or not name:
            raise BadRequest("metadata.name is required")
        specs.check_preview_port(spec.get("port"))
        with self._lock:
            if name in sandbox.previews:
                raise Conflict(f"Preview '{name}' already exists", code="PREVIEW_ALREADY_EXISTS")
            spec["url"] = self.preview_url(sandbox.name, name)
            spec.setdefault("public", False)
            sandbox.ports.setdefault(spec["port"], free_port())
            preview = Preview(name, sandbox.name, spec, self.now())
            sandbox.previews[name] = preview
        return preview

    def get_preview(self, sandbox_name: str, name: str) -> Preview:
        preview = self._live(sandbox_name).previews.get(name)
        if preview is None:
            raise NotFound(f"Preview '{name}' not found")
        return preview

    def list_previews(self, sandbox_name: str) -> list[Preview]:
        return list(self._live(sandbox_name).previews.values())

    def update_preview(self, sandbox_name: str, name: str, body: dict[str, Any]) -> Preview:
        preview = self.get_preview(sandbox_name, name)
        spec = dict(body.get("spec") or {})
        if "port" in spec:
            specs.check_preview_port(spec["port"])
        with self._lock:
            spec["url"] = preview.spec["url"]  # the URL is stable for a sandbox and preview name
            preview.spec = {**preview.spec, **spec}
            self._live(sandbox_name).ports.setdefault(preview.port, free_port())
        return preview

    def delete_preview(self, sandbox_name: str, name: str) -> Preview:
        preview = self.get_preview(sandbox_name, name)
        with self._lock:
            del self._live(sandbox_name).previews[name]
        return preview

    def preview_target(self, sandbox_name: str, name: str) -> tuple[Sandbox, Preview, int]:
        """Where a preview URL proxies to: the host port backing its sandbox port."""
        sandbox = self._live(sandbox_name)
        preview = self.get_preview(sandbox_name, name)
        with self._lock:
            sandbox.last_used_at = self.now()
            return sandbox, preview, sandbox.ports[preview.port]
