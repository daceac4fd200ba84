"""The Blaxel state backend: sandboxes, previews, volumes, images, and each sandbox's processes.

Methods are named after the API operations (`create_sandbox`, `exec_process`, ...) and raise the
errors of `emulator.blaxel.exceptions`; the routes only translate HTTP to these calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
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

from emulator.blaxel import files, images, specs, volumes
from emulator.blaxel.exceptions import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from emulator.blaxel.images import Image, ImageStore, lay_out
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BlaxelBackend:
    """Everything one emulated Blaxel workspace holds."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.timing = config.timing
        self._initial_timing = dataclasses.asdict(config.timing)
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
        self.timing.update(**self._initial_timing)
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
        """As the control plane answers it: a host and path without a scheme.

        Clients must normalise it (docs/platform-contract.md, "preview URL"); on loopback the
        product's normaliser picks http.
        """
        return self._public("previews", sandbox, preview).split("://", 1)[1]

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
        specs.validate_spec(spec, self.config.regions)
        with self._lock:
            existing = self.sandboxes.get(name)
            if existing is not None:
                self._settle(existing)
            if existing is not None and existing.status == "DELETING":
                raise Conflict(
                    f"Sandbox '{name}' is being deleted", code="SANDBOX_DELETION_IN_PROGRESS"
                )
            if existing is not None and existing.alive:
                # createIfNotExist answers whatever holds the name, FAILED included: the
                # caller deletes and recreates (docs/platform-contract.md, "createIfNotExist").
                if create_if_not_exist:
                    return existing
                raise Conflict(f"Sandbox '{name}' already exists", code="SANDBOX_ALREADY_EXISTS")
            if not upload:
                self._check_image(spec)
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
            self._settle(sandbox)
        return sandbox

    def list_sandboxes(self) -> list[Sandbox]:
        with self._lock:
            for sandbox in list(self.sandboxes.values()):
                self._settle(sandbox)
            return sorted((s for s in self.sandboxes.values() if s.alive), key=lambda s: s.name)

    def _settle(self, sandbox: Sandbox) -> None:
        """Apply the state change that became due: DEPLOYING ends, DELETING ends (lock held)."""
        now = self.now()
        if (
            sandbox.status == "DEPLOYING"
            and sandbox.ready_at is not None
            and now >= sandbox.ready_at
        ):
            sandbox.status = "DEPLOYED"
            sandbox.ready_at = None
            sandbox.last_used_at = self.now()
        elif (
            sandbox.status == "DELETING" and sandbox.gone_at is not None and now >= sandbox.gone_at
        ):
            sandbox.status = "TERMINATED"
            sandbox.gone_at = None
            shutil.rmtree(sandbox.root.parent, ignore_errors=True)

    def update_sandbox(self, name: str, body: dict[str, Any], upload: bool = False) -> Sandbox:
        sandbox = self._live(name)
        metadata = body.get("metadata") or {}
        spec = specs.with_defaults(body.get("spec") or sandbox.spec)
        specs.merge_masked_envs(spec, sandbox.spec)
        specs.validate_spec(spec, self.config.regions)
        specs.check_envs_unchanged(spec, sandbox.spec)
        with self._lock:
            old_runtime = sandbox.spec["runtime"]
            image_changed = spec["runtime"].get("image") != old_runtime.get("image")
            if image_changed and not upload:
                self._check_image(spec)
            self._check_volumes(name, spec)
            for key in ("labels", "displayName", "externalId"):
                if key in metadata:
                    sandbox.metadata[key] = metadata[key]
            # An image or memory change "may reset the sandbox" (SDK update_sandbox docstring).
            redeploy = (
                image_changed
                or spec["runtime"].get("memory") != old_runtime.get("memory")
                or spec.get("volumes") != sandbox.spec.get("volumes")
            )
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
        """Start a deletion: DELETING (processes gone at once), TERMINATED a moment later."""
        sandbox = self.get_sandbox(name)
        if sandbox.status == "DELETING":
            return sandbox
        if not sandbox.alive:
            raise NotFound(f"Sandbox '{name}' not found", code="SANDBOX_NOT_FOUND")
        self._terminate(sandbox, "deleted")
        return sandbox

    def _live(self, name: str) -> Sandbox:
        sandbox = self.get_sandbox(name)
        if not sandbox.alive or sandbox.status == "DELETING":
            raise NotFound(f"Sandbox '{name}' not found", code="SANDBOX_NOT_FOUND")
        return sandbox

    def _check_image(self, spec: dict[str, Any]) -> None:
        """A sandbox image must be pushed to the workspace or be a public hub image (400)."""
        ref = str(spec["runtime"]["image"])
        if self.images.resolve(ref) is None and not images.is_hub_image(ref):
            raise BadRequest(
                f"Image '{ref}' not found in workspace '{self.workspace}' or the Blaxel hub",
                code="IMAGE_NOT_FOUND",
            )

    def _provision(self, sandbox: Sandbox, deploy_s: float | None = None) -> None:
        """Lay the image into a fresh folder, mount volumes, back the ports: DEPLOYING, then
        DEPLOYED once the deploy latency has passed."""
        shutil.rmtree(sandbox.root, ignore_errors=True)
        sandbox.root.mkdir(parents=True)
        image = self.images.resolve(str(sandbox.spec["runtime"]["image"]))
        sandbox.layout = lay_out(image, sandbox.root) if image else images.hub_layout()
        self._mount_volumes(sandbox)
        self._allocate_ports(sandbox)
        delay = self.timing.sandbox_deploy_s if deploy_s is None else deploy_s
        sandbox.status = "DEPLOYING"
        sandbox.ready_at = self.now() + delay
        self._settle(sandbox)

    def _allocate_ports(self, sandbox: Sandbox) -> None:
        for port in specs.runtime_ports(sandbox.spec):
            sandbox.ports.setdefault(port, free_port())

    def _check_volumes(self, name: str, spec: dict[str, Any]) -> None:
        volumes.check_attachments(name, spec, self.volumes)

    def _mount_volumes(self, sandbox: Sandbox) -> None:
        volumes.mount(sandbox.name, sandbox.root, sandbox.spec, self.volumes)

    def _terminate(self, sandbox: Sandbox, reason: str) -> None:
        with self._lock:
            if sandbox.status in ("DELETING", "TERMINATED"):
                return  # the sweeper and a request may both find it due
            sandbox.status = "DELETING"
        sandbox.processes.kill_all()
        with self._lock:
            sandbox.previews.clear()
            sandbox.status = "DELETING"
            sandbox.gone_at = self.now() + self.timing.sandbox_delete_s
            sandbox.terminated_at = self.now()
            volumes.detach(sandbox.name, self.volumes)
            self.deleted_sandboxes.append(DeletedSandbox(sandbox.name, reason, time.time()))
            self._settle(sandbox)

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
            with self._lock:
                self._settle(sandbox)
            if sandbox.status == "DEPLOYED":
                idle = self._idle_since(sandbox)
                deadline = specs.expiry_deadline(sandbox.spec, sandbox.created_at, idle)
                if deadline is not None and now >= deadline:
                    self._terminate(sandbox, "expired")
            elif sandbox.status == "TERMINATED" and now >= (sandbox.terminated_at or now) + (
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
        await asyncio.sleep(self.timing.image_build_step_s)
        if sandbox.status != "BUILDING":
            return
        sandbox.status = "DEPLOYING"
        await asyncio.sleep(self.timing.image_build_step_s)
        if sandbox.status != "DEPLOYING" or self.sandboxes.get(sandbox.name) is not sandbox:
            return  # deleted, replaced or reset meanwhile
        with self._lock:
            sandbox.spec["runtime"]["image"] = image.ref
            sandbox.processes.kill_all()
            self._provision(sandbox, deploy_s=0)

    # -- previews ------------------------------------------------------------------------------

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
            volume = Volume(name, dict(body.get("spec") or {}), path, self.now())
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
        """A deployed sandbox reached through its own URL (counts as activity).

        A sandbox in standby wakes on this call, which fails once (503) as the first call after
        a resume may (docs/platform-contract.md, "standby").
        """
        sandbox = self._live(name)
        with self._lock:
            if sandbox.status != "DEPLOYED":
                raise Unavailable(f"Sandbox '{name}' is {sandbox.status}")
            self._maybe_standby(sandbox)
            sandbox.last_used_at = self.now()
            if sandbox.standby:
                sandbox.standby = False
                raise Unavailable(f"Sandbox '{name}' is resuming from standby: retry")
        return sandbox

    async def until_settled(self, name: str, status: str, limit_s: float = 30.0) -> None:
        """Wait while the sandbox holding `name` is in `status` (DEPLOYING or DELETING)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            with self._lock:
                sandbox = self.sandboxes.get(name)
                if sandbox is None:
                    return
                self._settle(sandbox)
                if sandbox.status != status:
                    return
                due = sandbox.ready_at if status == "DEPLOYING" else sandbox.gone_at
                wait = (due or 0) - self.now()
            await asyncio.sleep(min(max(wait, 0.005), 0.05))

    async def until_deployed(self, name: str, limit_s: float = 30.0) -> None:
        """Hold a call to a DEPLOYING sandbox until it is DEPLOYED, as the edge does.

        The SDK no longer waits for DEPLOYED after create (blaxel 0.4.24
        `core/sandbox/default/sandbox.py:725`, "You don't need to wait ... anymore"): the
        platform holds the first calls instead. Past `limit_s` the call goes on and fails 503.
        """
        await self.until_settled(name, "DEPLOYING", limit_s)

    def _maybe_standby(self, sandbox: Sandbox) -> None:
        """Idle past the standby delay with no keepAlive process: in standby (lock held)."""
        if sandbox.standby or sandbox.processes.any_running(keep_alive_only=True):
            return
        if self.now() - sandbox.last_used_at >= self.timing.standby_after_s:
            sandbox.standby = True

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

    # -- faults (tests only, through /_emulator) ---------------------------------------------------

    def fail_sandbox(self, name: str) -> Sandbox:
        """The compute plane lost the sandbox: FAILED, processes gone (as a fatal error does)."""
        sandbox = self._live(name)
        sandbox.processes.kill_all()
        with self._lock:
            sandbox.status = "FAILED"
            sandbox.ready_at = None
        return sandbox

    def recreate_sandbox(self, name: str) -> Sandbox:
        """Blaxel rebuilt the sandbox from its image: processes gone, files reset."""
        sandbox = self._live(name)
        sandbox.processes.kill_all()
        with self._lock:
            self._provision(sandbox, deploy_s=0)
        return sandbox

    def standby_sandbox(self, name: str) -> Sandbox:
        """Put the sandbox in standby now (its next sandbox API call fails once)."""
        sandbox = self._live(name)
        with self._lock:
            sandbox.standby = True
        return sandbox

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
