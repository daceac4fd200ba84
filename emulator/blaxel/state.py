"""The Blaxel backend's shared state: records, the lock, the clock, URLs, state settling.

`_lock` (re-entrant) guards every record: the `sandboxes` and `volumes` dicts, each sandbox's
`status`, `spec`, `metadata`, `previews`, `ports`, `standby`, timestamps and deadlines, each
volume's attachment, and the inspection lists (`image_pushes`, `process_starts`,
`started_processes`, `deleted_sandboxes`). Every mutation takes it. It is never held across an `await`; a sandbox's
`ProcessTable` has its own lock, so killing processes (which waits for them) happens outside it
where it can.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any

import httpx

from emulator.blaxel.images import ImageStore
from emulator.blaxel.processes import SandboxProcess
from emulator.blaxel.records import DeletedSandbox, ImagePush, ProcessStart, Sandbox, Volume
from emulator.config import BLAXEL_PREFIX, EmulatorConfig, check_preview_url_form


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BlaxelState:
    """Records and plumbing shared by every operation mixin."""

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
        self.preview_url_form = config.preview_url_form  # set_preview_url_form(); reset restores
        self.image_pushes: list[ImagePush] = []
        self.process_starts: list[ProcessStart] = []
        # Every process started, with its sandbox's name: for the fault suite's log scan, its
        # output and environment outlive a deleted or replaced sandbox (cleared by reset).
        self.started_processes: list[tuple[str, SandboxProcess]] = []
        self.deleted_sandboxes: list[DeletedSandbox] = []
        self.http: httpx.AsyncClient | None = None  # previews' upstream client
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def now(self) -> float:
        return time.time() + self.clock_offset

    # -- urls ---------------------------------------------------------------------------------

    def _public(self, *parts: str) -> str:
        return "/".join([self.config.public_base_url + BLAXEL_PREFIX, *parts])

    def sandbox_url(self, name: str) -> str:
        return self._public("sandboxes", name)

    def preview_url(self, sandbox: str, preview: str) -> str:
        """As the control plane answers it: a host and path without a scheme, or (form
        `protocol_relative`) `//host/path`.

        Clients must normalise it (docs/platform-contract.md, "preview URL"); on loopback the
        product's normaliser picks http.
        """
        host_path = self._public("previews", sandbox, preview).split("://", 1)[1]
        return "//" + host_path if self.preview_url_form == "protocol_relative" else host_path

    def set_preview_url_form(self, form: str) -> None:
        """How previews' URLs are written from now on (ValueError for an unknown form).

        A preview keeps the URL it was answered with: it is stored at creation.
        """
        self.preview_url_form = check_preview_url_form(form)

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
