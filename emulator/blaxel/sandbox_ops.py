"""Sandbox operations: create, get, list, update, delete; provisioning, expiry, standby.

A sandbox is DEPLOYING for `Timing.sandbox_deploy_s`, then DEPLOYED; a deleted one DELETING
for `Timing.sandbox_delete_s`, then TERMINATED (kept for its retention). See
docs/platform-contract.md (B6-B11) for the sources.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shlex
import shutil
import time
from typing import Any

from emulator.blaxel import boot, files, images, specs, volumes
from emulator.blaxel.exceptions import BadRequest, Conflict, NotFound, Unavailable
from emulator.blaxel.images import lay_out
from emulator.blaxel.records import DeletedSandbox, Sandbox
from emulator.blaxel.state import BlaxelState, free_port

logger = logging.getLogger(__name__)
# Where a booting sandbox reaches its own API without credentials (emulator/blaxel/boot.py).
LOCAL_API_PREFIX = "/_emulator/blaxel/local"

SWEEP_INTERVAL_S = 0.1


class SandboxOps(BlaxelState):
    """create_sandbox, get_sandbox, list_sandboxes, update_sandbox, delete_sandbox, sweep,
    sandbox_for_api, and the fault controls (fail, recreate, standby)."""

    def sandbox_view(self, sandbox: Sandbox) -> dict[str, Any]:
        deadline = specs.expiry_deadline(
            sandbox.spec, sandbox.created_at, self._idle_since(sandbox)
        )
        expires_in = deadline - self.now() if deadline is not None and sandbox.alive else None
        with self._lock:
            if sandbox.status == "DEPLOYED":
                self._maybe_standby(sandbox)  # a read shows `state: STANDBY` once it is due
            return sandbox.to_dict(self.workspace, self.sandbox_url(sandbox.name), expires_in)

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

    def advance_clock(self, seconds: float) -> None:
        """Move the emulated clock forward and apply the expirations that became due."""
        self.clock_offset += seconds
        self.sweep()

    def _await_upload(self, sandbox: Sandbox) -> None:
        """A sandbox created for an image push: UPLOADING until its build context arrives."""
        sandbox.status = "UPLOADING"
        sandbox.upload_token = secrets.token_urlsafe(16)

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

    def update_sandbox(self, name: str, body: dict[str, Any], upload: bool = False) -> Sandbox:
        sandbox = self._live(name)
        metadata = body.get("metadata") or {}
        spec = specs.with_defaults(body.get("spec") or sandbox.spec)
        specs.merge_masked_envs(spec, sandbox.spec)
        specs.merge_proxy_secrets(spec, sandbox.spec)
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
        self._boot(sandbox)

    def _boot(self, sandbox: Sandbox) -> None:
        """Run the image's entrypoint, as the sandbox boots (emulator/blaxel/boot.py)."""
        argv = boot.boot_command(sandbox.layout)
        if argv is None:
            return
        sandbox.local_token = secrets.token_urlsafe(16)
        cwd = files.sandbox_path(sandbox.root, sandbox.layout.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        local_api = f"{self.config.public_base_url}{LOCAL_API_PREFIX}/{sandbox.local_token}"
        env = volumes.process_env(
            sandbox, {boot.LOCAL_API_VARIABLE: local_api}, self.config.sandbox_path_prefix
        )
        try:
            process = sandbox.processes.start_boot(
                shlex.join(boot.host_argv(argv, sandbox.root)),
                cwd,
                env,
                self.config.sandbox_niceness,
            )
        except BadRequest as exc:  # no shell on PATH: the sandbox boots with nothing started
            logger.warning("blaxel emulator: boot of %s failed: %s", sandbox.name, exc)
            return
        self.started_processes.append((sandbox.name, process))  # its output is inspected too

    def sandbox_by_local_token(self, token: str) -> Sandbox | None:
        """The live sandbox whose boot process was given this local API URL."""
        with self._lock:
            found = [s for s in self.sandboxes.values() if s.local_token == token and s.alive]
        return found[0] if found and token else None

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
