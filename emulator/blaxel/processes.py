"""Sandbox processes as local subprocesses: `bash -c command` in its own process group.

Each process gets reader threads for stdout and stderr and a waiter thread that enforces its
timeout, so the table works the same from the server's event loop and from a test's thread.

Restart semantics follow Blaxel's sandbox API (blaxel-ai/sandbox,
`sandbox-api/src/handler/process/process.go` `shouldRestart` and `termination.go`
`waitForRun`): only a *failed* run restarts (a stop or kill through the API sets the status to
stopped/killed first, so it never does), up to `maxRestarts` times, a negative value meaning no
limit and 0 (the default) none; the next run starts after a one-second pause, during which the
process still reads `running` and a stop cancels the pending run; the API's pid stays the same
across runs. A run ended by a signal reports exit code -1, as Go's `ExitError.ExitCode()` does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any

from emulator.blaxel.exceptions import BadRequest, Conflict, NotFound

OUTPUT_TAIL = 64 * 1024  # get/list show the last 64 KB of each stream, as the real API
LOG_LIMIT = 4 * 1024 * 1024  # the logs endpoint shows up to 4 MB
KEEP_ALIVE_DEFAULT_TIMEOUT_S = 600
TERMINAL = ("completed", "failed", "killed", "stopped")
SIGNALLED_EXIT_CODE = -1  # Go's ExitCode() for a process a signal ended (the sandbox API is Go)


def exit_code(returncode: int) -> int:
    """The sandbox API's `exitCode` for a Popen return code (negative: ended by that signal)."""
    return returncode if returncode >= 0 else SIGNALLED_EXIT_CODE


def _http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


class SandboxProcess:
    """One command running (or finished) in a sandbox."""

    def __init__(
        self,
        *,
        name: str,
        command: str,
        cwd: Path,
        working_dir: str,
        env: dict[str, str],
        timeout_s: int | None,
        keep_alive: bool,
        niceness: int = 0,
        restart_on_failure: bool = False,
        max_restarts: int = 0,
        restart_delay_s: float = 1.0,
    ) -> None:
        self.name = name
        # A failed run starts again, up to `max_restarts` times (negative: no limit), as the
        # sandbox API's `restartOnFailure` says (SDK sandbox/client/models/process_request.py).
        self.restart_on_failure = restart_on_failure
        self.max_restarts = max_restarts
        self.restart_count = 0
        self._restart_delay_s = restart_delay_s
        self._between_runs = False  # a run failed and the next one has not started yet
        self._run_ended = threading.Event()  # the current run's end (set per run, for crash())
        self._cancel_restart = threading.Event()  # a stop during the pause between runs
        self._cwd, self._env = cwd, env
        self._niceness = niceness
        self.command = command
        self.working_dir = working_dir
        self.keep_alive = keep_alive
        self.env_names = sorted(env)
        self.started_at = time.time()
        self.completed_at: float | None = None
        self.exit_code: int | None = None
        self._forced_status: str | None = None
        self._lock = threading.Lock()
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._logs = bytearray()
        self._done = threading.Event()
        self._spawn()
        self.pid = str(self._popen.pid)  # the API's pid: the first run's, kept across restarts
        threading.Thread(target=self._wait, args=(timeout_s,), daemon=True).start()

    def _spawn(self) -> None:
        try:
            self._popen = subprocess.Popen(
                ["bash", "-c", self.command],
                cwd=self._cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own process group, so that stop and kill reach every child (os.killpg),
                # but not a session of its own: on Linux a new session is a new scheduling
                # autogroup (kernel commit 5091faa449ee, "sched: Add 'autogroup' scheduling
                # feature"), against which the niceness below counts for nothing. Measured with
                # sessions of their own: 200 stand-in workers at niceness 19 took up to 1.5
                # cores from the orchestrator the scheduling benchmark timed.
                process_group=0,
            )
        except OSError as exc:  # e.g. no bash on the sandbox's PATH: the API's 400, not a 500
            raise BadRequest(f"could not start process: {exc}") from exc
        if self._niceness:
            # Set from here, just after exec (a preexec_fn is unsafe in a threaded parent):
            # the child has only begun its start-up, and its children inherit the value.
            # Gone already, or a value below this process's own (only root may lower it): as is.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpriority(os.PRIO_PROCESS, self._popen.pid, self._niceness)
        self._readers = [
            threading.Thread(
                target=self._read, args=(self._popen.stdout, self._stdout), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(self._popen.stderr, self._stderr), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    def _may_restart(self, returncode: int) -> bool:
        if returncode == 0 or not self.restart_on_failure or self._forced_status:
            return False
        return self.max_restarts < 0 or self.restart_count < self.max_restarts

    def _read(self, stream: IO[bytes] | None, buffer: bytearray) -> None:
        assert stream is not None
        for line in iter(stream.readline, b""):
            with self._lock:
                buffer.extend(line)
                if len(self._logs) < LOG_LIMIT:
                    self._logs.extend(line)
        stream.close()

    def _wait(self, timeout_s: int | None) -> None:
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while True:
            returncode = self._wait_run(deadline)
            with self._lock:
                restart = self._may_restart(returncode)
                if restart:
                    self.restart_count += 1
                    self._between_runs = True
                ended = self._run_ended
            if not restart or not self._next_run():
                break
            ended.set()
        with self._lock:
            self.exit_code = exit_code(returncode)
            self.completed_at = time.time()
            self._between_runs = False
        self._done.set()
        ended.set()

    def _wait_run(self, deadline: float | None) -> int:
        """Wait for the current run to end (killing it at the deadline); its return code."""
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            returncode = self._popen.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL, "killed")
            returncode = self._popen.wait()
        for reader in self._readers:
            reader.join(timeout=0.5)  # a backgrounded child may hold the pipe open
        return returncode

    def _next_run(self) -> bool:
        """After the pause between runs, start the next one; False if stopped meanwhile."""
        self._cancel_restart.wait(self._restart_delay_s)
        with self._lock:
            if self._forced_status:  # stopped or killed during the pause: no next run
                return False
            self._run_ended = threading.Event()
            try:
                self._spawn()
            except BadRequest:
                return False
            self._between_runs = False
        return True

    @property
    def status(self) -> str:
        if not self._done.is_set():
            return "running"
        if self._forced_status:
            return self._forced_status
        return "completed" if self.exit_code == 0 else "failed"

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the process has ended (blocking; call from a worker thread)."""
        return self._done.wait(timeout_s)

    @property
    def env(self) -> dict[str, str]:
        """The environment the process runs with (image, spec and request envs; inspection)."""
        return dict(self._env)

    @property
    def os_pid(self) -> int:
        """The current run's OS pid (the API's `pid` stays the first run's)."""
        return self._popen.pid

    def signal(self, sig: int, status: str) -> None:
        """Send `sig` to the whole process group; the final status becomes `status`."""
        if self._done.is_set():
            return
        with self._lock:
            self._forced_status = status
            self._cancel_restart.set()
            popen = self._popen
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)

    def crash(self, wait_s: float = 5.0) -> int:
        """SIGKILL the current run from outside the API, as an OOM kill or a segfault would.

        Unlike `signal` (the API's stop and kill) this sets no status: the run fails, exit code
        -1, and a `restartOnFailure` process runs again. Returns once the run's end is recorded
        (restart counted, or the process failed for good): the OS pid that was killed.
        """
        with self._lock:
            if self._done.is_set():
                raise NotFound(f"process with identifier '{self.name}' is not running")
            if self._between_runs:
                raise Conflict(f"process '{self.name}' is between runs (restarting)")
            popen, ended = self._popen, self._run_ended
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        ended.wait(wait_s)
        return popen.pid

    def output(self) -> tuple[str, str, str]:
        with self._lock:
            return (
                self._stdout.decode(errors="replace"),
                self._stderr.decode(errors="replace"),
                self._logs.decode(errors="replace"),
            )

    def to_response(self, tail: int | None = OUTPUT_TAIL) -> dict[str, Any]:
        """The sandbox API's `ProcessResponse`."""
        stdout, stderr, logs = self.output()
        if tail is not None:
            stdout, stderr, logs = stdout[-tail:], stderr[-tail:], logs[-tail:]
        return {
            "pid": self.pid,
            "name": self.name,
            "command": self.command,
            "workingDir": self.working_dir,
            "status": self.status,
            "exitCode": self.exit_code if self.exit_code is not None else 0,
            "startedAt": _http_date(self.started_at),
            "completedAt": _http_date(self.completed_at) if self.completed_at else "",
            "stdout": stdout,
            "stderr": stderr,
            "logs": logs,
            "keepAlive": self.keep_alive,
            "restartCount": self.restart_count,
            "restartOnFailure": self.restart_on_failure,
            "maxRestarts": self.max_restarts,
            "stdin": False,
        }


def _restart_policy(request: dict[str, Any]) -> tuple[bool, int]:
    """`restartOnFailure` and `maxRestarts`, typed as the API's Go struct binds them (400 else).

    Both are optional: the Go zero values (false, 0) mean no restart.
    """
    restart = request.get("restartOnFailure", False)
    limit = request.get("maxRestarts", 0)
    if restart is None:
        restart = False
    if limit is None:
        limit = 0
    if not isinstance(restart, bool):
        raise BadRequest(f"restartOnFailure must be a boolean, not {restart!r}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise BadRequest(f"maxRestarts must be an integer, not {limit!r}")
    return restart, limit


class ProcessTable:
    """A sandbox's processes, addressable by name or pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[SandboxProcess] = []
        # The image's entrypoint (emulator/blaxel/boot.py): not listed, killed with the rest.
        self.boot: SandboxProcess | None = None

    def start_boot(
        self, command: str, cwd: Path, env: dict[str, str], niceness: int = 0
    ) -> SandboxProcess:
        """Run the sandbox's boot command (the previous boot, if any, is killed first)."""
        if self.boot is not None:
            self.boot.signal(signal.SIGKILL, "killed")
        self.boot = SandboxProcess(
            name="boot",
            command=command,
            cwd=cwd,
            working_dir=str(cwd),
            env=env,
            timeout_s=None,
            keep_alive=False,
            niceness=niceness,
        )
        return self.boot

    def start(
        self,
        request: dict[str, Any],
        cwd: Path,
        env: dict[str, str],
        restart_delay_s: float = 1.0,
        niceness: int = 0,
    ) -> SandboxProcess:
        command = request.get("command")
        if not isinstance(command, str) or not command.strip():
            raise BadRequest("command is required")
        restart_on_failure, max_restarts = _restart_policy(request)
        name = request.get("name") or f"proc-{secrets.token_hex(4)}"
        keep_alive = bool(request.get("keepAlive"))
        timeout = request.get("timeout")
        if timeout is None and keep_alive:
            timeout = KEEP_ALIVE_DEFAULT_TIMEOUT_S
        with self._lock:
            if any(p.name == name and p.running for p in self._processes):
                raise BadRequest(f"process with name '{name}' already exists and is running")
            process = SandboxProcess(
                name=name,
                command=command,
                cwd=cwd,
                working_dir=str(request.get("workingDir") or "/"),
                env=env,
                timeout_s=int(timeout) if timeout else None,
                keep_alive=keep_alive,
                niceness=niceness,
                restart_on_failure=restart_on_failure,
                max_restarts=max_restarts,
                restart_delay_s=restart_delay_s,
            )
            self._processes.append(process)
        return process

    def get(self, identifier: str) -> SandboxProcess:
        with self._lock:
            for process in reversed(self._processes):  # the latest run of a reused name
                if identifier in (process.name, process.pid):
                    return process
        raise NotFound(f"process with identifier '{identifier}' not found")

    def list(self) -> list[SandboxProcess]:
        with self._lock:
            return list(self._processes)

    def crash(self, identifier: str) -> int:
        """SIGKILL the named process's current run as the OS would (not the API): it fails."""
        return self.get(identifier).crash()

    def any_running(self, keep_alive_only: bool = False) -> bool:
        return any(p.running and (p.keep_alive or not keep_alive_only) for p in self.list())

    def stop(self, identifier: str, sig: int = signal.SIGTERM, status: str = "stopped") -> None:
        process = self.get(identifier)
        if not process.running:
            raise NotFound(f"process with identifier '{identifier}' is not running")
        process.signal(sig, status)

    def kill_all(self) -> None:
        """SIGKILL every process group and wait (briefly) for each to be reaped."""
        processes = self.list() + ([self.boot] if self.boot is not None else [])
        for process in processes:
            process.signal(signal.SIGKILL, "killed")
        for process in processes:
            process.wait(5)
