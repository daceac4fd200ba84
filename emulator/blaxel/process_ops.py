"""The sandbox API's process operations (files are in `files.py`, driven by the routes)."""

from __future__ import annotations

import signal
import time
from typing import Any

from emulator.blaxel import files
from emulator.blaxel.processes import SandboxProcess
from emulator.blaxel.records import ProcessStart
from emulator.blaxel.sandbox_ops import SandboxOps
from emulator.blaxel.volumes import process_env


class ProcessOps(SandboxOps):
    """exec_process, get_process, list_processes, stop_process, kill_process, crash_process."""

    def exec_process(self, name: str, request: dict[str, Any]) -> SandboxProcess:
        sandbox = self.sandbox_for_api(name)
        working_dir = files.display_path(request.get("workingDir") or sandbox.layout.workdir)
        cwd = files.sandbox_path(sandbox.root, working_dir)
        cwd.mkdir(parents=True, exist_ok=True)
        env = process_env(sandbox, request.get("env") or {}, self.config.sandbox_path_prefix)
        process = sandbox.processes.start(
            {**request, "workingDir": working_dir},
            cwd,
            env,
            self.timing.process_restart_s,
            self.config.sandbox_niceness,
        )
        start = ProcessStart(
            name, process.name, process.command, tuple(sorted(env)), working_dir, time.time()
        )
        with self._lock:
            self.process_starts.append(start)
            self.started_processes.append((name, process))
        return process

    def get_process(self, name: str, identifier: str) -> SandboxProcess:
        return self.sandbox_for_api(name).processes.get(identifier)

    def list_processes(self, name: str) -> list[SandboxProcess]:
        return self.sandbox_for_api(name).processes.list()

    def stop_process(self, name: str, identifier: str) -> None:
        self.sandbox_for_api(name).processes.stop(identifier)

    def kill_process(self, name: str, identifier: str) -> None:
        self.sandbox_for_api(name).processes.stop(identifier, signal.SIGKILL, "killed")

    def get_process_record(self, name: str, identifier: str) -> SandboxProcess:
        """A process as the emulator holds it, without touching the sandbox (tests only)."""
        return self._live(name).processes.get(identifier)

    def crash_process(self, name: str, identifier: str) -> int:
        """Fault control: the process dies as an OOM kill would (a failure, not the API's kill).

        Not a sandbox API call, so no activity and no standby wake-up; blocks until the run's
        end is recorded (call it off the event loop). Returns the OS pid that was killed.
        """
        return self._live(name).processes.crash(identifier)
