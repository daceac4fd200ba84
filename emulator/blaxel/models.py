"""The Blaxel state backend: sandboxes, previews, volumes, images, and each sandbox's processes.

Methods are named after the API operations (`create_sandbox`, `exec_process`, ...) and raise the
errors of `emulator.blaxel.exceptions`; the routes only translate HTTP to these calls.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any

import httpx

from emulator.blaxel import files, specs, volumes
from emulator.blaxel.exceptions import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from emulator.blaxel.images import Image, ImageStore, Layout, lay_out
from emulator.blaxel.processes import SandboxProcess
from emulator.blaxel.records import (
    DeletedSandbox,
    ImagePush,
    Preview,
    ProcessStart,
    Sandbox,
    Volume,
)
from emulator.blaxel.volumes import process_env
from emulator.config import BLAXEL_PREFIX, EmulatorConfig

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.1
BUILD_STEP_S = 0.3  # how long a pushed build stays in each of BUILDING and DEPLOYING


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BlaxelBackend:
    """Everything one emulated Blaxel workspace holds."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.workspace = config.blaxel_workspace
        self.root = config.data_dir / "blaxel"
        self.images = ImageStore(self.root / "images", self.workspace)
        self._lock = threading.RLock()
        self.sandboxes: dict[str, Sandbox] = {}
        self.volumes: dict[str, Volume] = {}
        self.clock_offset = 0.0  # tests move time forward for TTLs: advance_clock()
        self.image_pushes: list[ImagePush] = []
        self.process_starts: list[ProcessStart] = []
        self.deleted_sandboxes: list[DeletedSandbox] = []
        self.http: httpx.AsyncClient | None = None  # previews' upstream client
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.http = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(300, connect=5))
        self._spawn(self._sweep_forever())

    async def stop(self) -> None:
        """Stop the sweeper and pending builds, and kill every sandbox process."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._kill_everything()
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def reset(self) -> None:
        """Kill every process and forget every resource (the server keeps running)."""
        self._kill_everything()
        with self._lock:
            self.sandboxes.clear()
            self.volumes.clear()
            self.image_pushes.clear()
            self.process_starts.clear()
            self.deleted_sandboxes.clear()
            self.clock_offset = 0.0
        self.images.reset()
        shutil.rmtree(self.root / "sandboxes", ignore_errors=True)
        shutil.rmtree(self.root / "volumes", ignore_errors=True)

    def _kill_everything(self) -> None:
        with self._lock:
            sandboxes = list(self.sandboxes.values())
        for sandbox in sandboxes:
            sandbox.processes.kill_all()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulated clock forward and apply the expirations that became due."""
        self.clock_offset += seconds
        self.sweep()

    # -- urls ---------------------------------------------------------------------------------

    def _public(self, *parts: str) -> str:
        return "/".join([self.config.public_base_url + BLAXEL_PREFIX, *parts])

    def sandbox_url(self, name: str) -> str:
        return self._public("sandboxes", name)

    def preview_url(self, sandbox: str, preview: str) -> str:
        return self._public("previews", sandbox, preview)

    def sandbox_view(self, sandbox: Sandbox) -> dict[str, Any]:
        deadline = specs.expiry_deadline(
            sandbox.spec, sandbox.created_at, self._idle_since(sandbox)
        )
        expires_in = deadline - self.now() if deadline is not None and sandbox.alive else None
        return sandbox.to_dict(self.workspace, self.sandbox_url(sandbox.name), expires_in)

    # -- sandboxes -----------------------------------------------------------------------------

    def create_sandbox(
        self, body: dict[str, Any], create_if_not_exist: bool = False, upload: bool = False
    ) -> Sandbox:
        metadata = dict(body.get("metadata") or {})
        name = specs.validate_sandbox_name(
            metadata.get("name") or f"sandbox-{secrets.token_hex(4)}"
        )
        spec = specs.with_defaults(body.get("spec"))
        specs.validate_spec(spec)
        with self._lock:
            existing = self.sandboxes.get(name)
            if existing is not None and existing.status not in ("TERMINATED", "FAILED"):
                if create_if_not_exist:
                    return existing
                raise Conflict(f"Sandbox '{name}' already exists", code="SANDBOX_ALREADY_EXISTS")
            if existing is not None:
                existing.processes.kill_all()
                volumes.detach(name, self.volumes)
            self._check_volumes(name, spec)
            now = self.now()
            sandbox = Sandbox(
                name=name,
                metadata=metadata,
                spec=spec,
                root=self.root / "sandboxes" / name / "fs",
                created_at=now,
                updated_at=now,
                last_used_at=now,
            )
            self.sandboxes[name] = sandbox
            if upload:
                self._await_upload(sandbox)
            else:
                self._provision(sandbox)
        return sandbox

    def get_sandbox(self, name: str) -> Sandbox:
        """A sandbox, or a deleted one (TERMINATED) during its retention."""
        with self._lock:
            sandbox = self.sandboxes.get(name)
        if sandbox is None:
            raise NotFound(f"Sandbox '{name}' not found", code="SANDBOX_NOT_FOUND")
        return sandbox

    def list_sandboxes(self) -> list[Sandbox]:
        with self._lock:
            return sorted((s for s in self.sandboxes.values() if s.alive), key=lambda s: s.name)

    def update_sandbox(self, name: str, body: dict[str, Any], upload: bool = False) -> Sandbox:
        sandbox = self._live(name)
        metadata = body.get("metadata") or {}
        spec = specs.with_defaults(body.get("spec") or sandbox.spec)
        specs.merge_masked_envs(spec, sandbox.spec)
        specs.validate_spec(spec)
        with self._lock:
            self._check_volumes(name, spec)
            for key in ("labels", "displayName", "externalId"):
                if key in metadata:
                    sandbox.metadata[key] = metadata[key]
            old_image = sandbox.spec["runtime"].get("image")
            image_changed = spec["runtime"].get("image") != old_image
            redeploy = image_changed or spec.get("volumes") != sandbox.spec.get("volumes")
            sandbox.spec = spec
            sandbox.updated_at = self.now()
            if upload:
                self._await_upload(sandbox)
            elif redeploy:
                sandbox.processes.kill_all()
                self._provision(sandbox)
            else:
                self._allocate_ports(sandbox)
        return sandbox

    def delete_sandbox(self, name: str) -> Sandbox:
        sandbox = self._live(name)
        self._terminate(sandbox, "deleted")
        return sandbox

    def _live(self, name: str) -> Sandbox:
        sandbox = self.get_sandbox(name)
        if not sandbox.alive:
            raise NotFound(f"Sandbox '{name}' not found", code="SANDBOX_NOT_FOUND")
        return sandbox

    def _provision(self, sandbox: Sandbox) -> None:
        """Lay the image into a fresh folder, mount volumes, back the ports: DEPLOYED."""
        shutil.rmtree(sandbox.root, ignore_errors=True)
        sandbox.root.mkdir(parents=True)
        image = self.images.resolve(str(sandbox.spec["runtime"]["image"]))
        sandbox.layout = lay_out(image, sandbox.root) if image else Layout()
        self._mount_volumes(sandbox)
        self._allocate_ports(sandbox)
        sandbox.status = "DEPLOYED"

    def _allocate_ports(self, sandbox: Sandbox) -> None:
        for port in specs.runtime_ports(sandbox.spec):
            sandbox.ports.setdefault(port, free_port())

    def _check_volumes(self, name: str, spec: dict[str, Any]) -> None:
        volumes.check_attachments(name, spec, self.volumes)

    def _mount_volumes(self, sandbox: Sandbox) -> None:
        volumes.mount(sandbox.name, sandbox.root, sandbox.spec, self.volumes)

    def _terminate(self, sandbox: Sandbox, reason: str) -> None:
        sandbox.processes.kill_all()
        with self._lock:
            sandbox.previews.clear()
            sandbox.status = "TERMINATED"
            sandbox.terminated_at = self.now()
            volumes.detach(sandbox.name, self.volumes)
            self.deleted_sandboxes.append(DeletedSandbox(sandbox.name, reason, time.time()))
        shutil.rmtree(sandbox.root.parent, ignore_errors=True)

    # -- expiry --------------------------------------------------------------------------------

    def _idle_since(self, sandbox: Sandbox) -> float:
        # A running keepAlive process keeps the sandbox busy, as on the platform.
        if sandbox.processes.any_running(keep_alive_only=True):
            return self.now()
        return sandbox.last_used_at

    def sweep(self) -> None:
        """Delete the sandboxes whose lifecycle says so; forget records past their retention."""
        now = self.now()
        with self._lock:
            sandboxes = list(self.sandboxes.values())
        for sandbox in sandboxes:
            if sandbox.status == "DEPLOYED":
                idle = self._idle_since(sandbox)
                deadline = specs.expiry_deadline(sandbox.spec, sandbox.created_at, idle)
                if deadline is not None and now >= deadline:
                    self._terminate(sandbox, "expired")
            elif sandbox.terminated_at is not None and now >= sandbox.terminated_at + (
                specs.terminated_retention(sandbox.spec)
            ):
                with self._lock:
                    if self.sandboxes.get(sandbox.name) is sandbox:
                        del self.sandboxes[sandbox.name]

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                self.sweep()
            except Exception:  # a background task's top: log, keep sweeping
                logger.exception("blaxel emulator: sweep failed")

    # -- image push ----------------------------------------------------------------------------

    def _await_upload(self, sandbox: Sandbox) -> None:
        sandbox.status = "UPLOADING"
        sandbox.upload_token = secrets.token_urlsafe(16)

    def upload_url(self, sandbox: Sandbox) -> str:
        return self._public("uploads", sandbox.name) + f"?token={sandbox.upload_token}"

    def push_image(self, name: str, token: str, archive: bytes) -> None:
        """Receive the zipped build context at the upload URL; the build then runs on its own."""
        sandbox = self.sandboxes.get(name)
        if sandbox is None or not token or sandbox.upload_token != token:
            raise Forbidden("upload URL is invalid or expired", code="FORBIDDEN")
        sandbox.upload_token = None
        self.image_pushes.append(ImagePush(name, len(archive), time.time()))
        try:
            image = self.images.push(name, archive)
        except BadRequest:
            logger.info("blaxel emulator: build context for %s rejected", name)
            sandbox.status = "FAILED"
            return
        sandbox.status = "BUILDING"
        self._spawn(self._finish_build(sandbox, image))

    async def _finish_build(self, sandbox: Sandbox, image: Image) -> None:
        await asyncio.sleep(BUILD_STEP_S)
        if sandbox.status != "BUILDING":
            return
        sandbox.status = "DEPLOYING"
        await asyncio.sleep(BUILD_STEP_S)
        if sandbox.status != "DEPLOYING" or self.sandboxes.get(sandbox.name) is not sandbox:
            return  # deleted, replaced or reset meanwhile
        with self._lock:
            sandbox.spec["runtime"]["image"] = image.ref
            sandbox.processes.kill_all()
            self._provision(sandbox)

    # -- previews ------------------------------------------------------------------------------

    def create_preview(self, sandbox_name: str, body: dict[str, Any]) -> Preview:
        sandbox = self._live(sandbox_name)
        name = (body.get("metadata") or {}).get("name")
        spec = dict(body.get("spec") or {})
        if not isinstance(name, str) or not name:
            raise BadRequest("metadata.name is required")
        if not isinstance(spec.get("port"), int) or not 1 <= spec["port"] <= 65535:
            raise BadRequest("spec.port must be a port number")
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
        sandbox.last_used_at = self.now()
        return sandbox, preview, sandbox.ports[preview.port]

    # -- volumes -------------------------------------------------------------------------------

    def create_volume(self, body: dict[str, Any]) -> Volume:
        name = specs.validate_sandbox_name((body.get("metadata") or {}).get("name"))
        with self._lock:
            if name in self.volumes:
                raise Conflict(f"Volume '{name}' already exists", code="VOLUME_ALREADY_EXISTS")
            path = self.root / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            labels = dict((body.get("metadata") or {}).get("labels") or {})
            volume = Volume(name, dict(body.get("spec") or {}), path, self.now(), labels=labels)
            self.volumes[name] = volume
        return volume

    def get_volume(self, name: str) -> Volume:
        volume = self.volumes.get(name)
        if volume is None:
            raise NotFound(f"Volume '{name}' not found", code="VOLUME_NOT_FOUND")
        return volume

    def list_volumes(self) -> list[Volume]:
        return sorted(self.volumes.values(), key=lambda v: v.name)

    def delete_volume(self, name: str) -> Volume:
        volume = self.get_volume(name)
        if volume.attached_to:
            raise BadRequest(
                f"Volume '{name}' is attached to {volume.attached_to}", code="VOLUME_ATTACHED"
            )
        with self._lock:
            del self.volumes[name]
        shutil.rmtree(volume.path, ignore_errors=True)
        return volume

    # -- the sandbox API: processes and files ----------------------------------------------------

    def sandbox_for_api(self, name: str) -> Sandbox:
        """A deployed sandbox reached through its own URL (counts as activity)."""
        sandbox = self._live(name)
        if sandbox.status != "DEPLOYED":
            raise Unavailable(f"Sandbox '{name}' is {sandbox.status}")
        sandbox.last_used_at = self.now()
        return sandbox

    def exec_process(self, name: str, request: dict[str, Any]) -> SandboxProcess:
        sandbox = self.sandbox_for_api(name)
        working_dir = files.display_path(request.get("workingDir") or sandbox.layout.workdir)
        cwd = files.sandbox_path(sandbox.root, working_dir)
        cwd.mkdir(parents=True, exist_ok=True)
        env = process_env(sandbox, request.get("env") or {}, self.config.sandbox_path_prefix)
        process = sandbox.processes.start({**request, "workingDir": working_dir}, cwd, env)
        self.process_starts.append(
            ProcessStart(
                name, process.name, process.command, tuple(sorted(env)), working_dir, time.time()
            )
        )
        return process

    def get_process(self, name: str, identifier: str) -> SandboxProcess:
        return self.sandbox_for_api(name).processes.get(identifier)

    def list_processes(self, name: str) -> list[SandboxProcess]:
        return self.sandbox_for_api(name).processes.list()

    def stop_process(self, name: str, identifier: str) -> None:
        self.sandbox_for_api(name).processes.stop(identifier)

    def kill_process(self, name: str, identifier: str) -> None:
        self.sandbox_for_api(name).processes.stop(identifier, signal.SIGKILL, "killed")

    # -- inspection (tests only) -----------------------------------------------------------------

    def live_resources(self) -> dict[str, list[str]]:
        """Names of everything alive, for leak checks."""
        with self._lock:
            sandboxes = [s for s in self.sandboxes.values() if s.alive]
            return {
                "sandboxes": sorted(s.name for s in sandboxes),
                "previews": sorted(f"{s.name}/{p}" for s in sandboxes for p in s.previews),
                "volumes": sorted(self.volumes),
                "processes": sorted(
                    f"{s.name}/{p.name}" for s in sandboxes for p in s.processes.list() if p.running
                ),
            }

    def running_pids(self) -> list[int]:
        with self._lock:
            sandboxes = list(self.sandboxes.values())
        return [int(p.pid) for s in sandboxes for p in s.processes.list() if p.running]
