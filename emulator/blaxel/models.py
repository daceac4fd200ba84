"""The Blaxel state backend: sandboxes, previews, volumes, images, and each sandbox's processes.

One operation mixin per resource (`sandbox_ops`, `preview_ops`, `volume_ops`, `image_ops`,
`process_ops`) over one shared state (`state.BlaxelState`, whose docstring says what its lock
guards). Methods are named after the API operations (`create_sandbox`, `exec_process`, ...) and
raise the errors of `emulator.blaxel.exceptions`; the routes only translate HTTP to these calls.
"""

from __future__ import annotations

import asyncio
import shutil

import httpx

from emulator.blaxel.image_ops import ImageOps
from emulator.blaxel.preview_ops import PreviewOps
from emulator.blaxel.process_ops import ProcessOps
from emulator.blaxel.state import free_port
from emulator.blaxel.volume_ops import VolumeOps

__all__ = ["BlaxelBackend", "free_port"]


class BlaxelBackend(ImageOps, PreviewOps, ProcessOps, VolumeOps):
    """Everything one emulated Blaxel workspace holds."""

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
            self.started_processes.clear()
            self.deleted_sandboxes.clear()
            self.clock_offset = 0.0
            self.preview_url_form = self.config.preview_url_form
        self.timing.update(**self._initial_timing)
        self.images.reset()
        shutil.rmtree(self.root / "sandboxes", ignore_errors=True)
        shutil.rmtree(self.root / "volumes", ignore_errors=True)

    def _kill_everything(self) -> None:
        with self._lock:
            sandboxes = list(self.sandboxes.values())
        for sandbox in sandboxes:
            sandbox.processes.kill_all()

    # -- inspection (tests only) -----------------------------------------------------------------

    def live_resources(self) -> dict[str, list[str]]:
        """Names of everything that stays, for leak checks: a DELETING sandbox is on its way
        out (its delete was accepted; nothing of it runs), so it is not a leak."""
        with self._lock:
            for sandbox in self.sandboxes.values():
                self._settle(sandbox)
            sandboxes = [s for s in self.sandboxes.values() if s.alive and s.status != "DELETING"]
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
        return [p.os_pid for s in sandboxes for p in s.processes.list() if p.running]
