"""Run the emulator as a real loopback server: in a thread for tests, or as `python -m emulator`."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from emulator.app import Emulator, create_app
from emulator.config import EmulatorConfig

LOOPBACK = "127.0.0.1"


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: any free port); never another interface."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only then; without it every keep-alive
    # response waits ~40 ms on a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(512)
    return sock


class EmulatorServer:
    """uvicorn serving the emulator on a loopback socket, in a background thread.

    with EmulatorServer() as server:
        server.config.anthropic_base_url, server.config.blaxel_base_url, server.emulator
    """

    def __init__(self, port: int = 0, data_dir: Path | None = None, **config: object) -> None:
        self._sock = bind_loopback(port)
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="cma-emulator-")
        actual_port = self._sock.getsockname()[1]
        self.config = EmulatorConfig(
            public_base_url=f"http://{LOOPBACK}:{actual_port}",
            data_dir=data_dir or Path(self._tmp.name),  # type: ignore[union-attr]
            **config,  # type: ignore[arg-type]
        )
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.emulator = Emulator(self.config)
        uv_config = uvicorn.Config(
            create_app(self.emulator),
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=2,  # open event streams would otherwise hold shutdown
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        niceness = self.config.server_niceness
        # Linux only: there a thread id is a task a niceness applies to (elsewhere it is not).
        if niceness and sys.platform == "linux":
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        self._server.run(sockets=[self._sock])

    def start(self) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("emulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving; AssertionError when the emulator met an unexpected exception meanwhile
        (a bug in the emulator is a test failure, never a silent 500)."""
        self.emulator.anthropic.close_streams()
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        if self.emulator.unexpected_errors:
            raise AssertionError(
                "the emulator raised unexpected exceptions: "
                + "; ".join(self.emulator.unexpected_errors)
            )

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
