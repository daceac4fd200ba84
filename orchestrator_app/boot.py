"""The orchestrator image's entrypoint: what Blaxel runs whenever the sandbox starts.

`pulumi up` starts the server through the sandbox API and saves that same request on the
sandbox's state volume (infra/providers/server.py). When Blaxel rebuilds the sandbox, its
processes and files are gone but the volume is not: this entrypoint starts the sandbox API, as
every custom entrypoint must, and replays the saved request through it, so the server serves
again without anyone running `up` (docs knowledge-base "resolving sandbox creation issues":
start `sandbox-api`, wait for it, start other processes through `/process`, stay alive). A
crashed server is the platform's to rerun (`restartOnFailure` in the same request).

Nothing here logs the request: its env holds the server's secrets.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")  # before the first blaxel import: no telemetry

log = logging.getLogger("orchestrator_app.boot")

SANDBOX_API_PATH = "/usr/local/bin/sandbox-api"  # the SDK's image builder copies it in
# The sandbox API inside the sandbox (docs "Sandboxes/Ports": 8080 is its port); an emulator
# whose sandboxes share the host's loopback says where each one's is instead.
LOCAL_API_URL = "http://127.0.0.1:8080"
# The state volume's mount path (the stack mounts it there), read relative to the image's
# working dir, /app, where this entrypoint runs.
STATE_MOUNT_PATH = "/app/state"
STATE_DIR = Path(STATE_MOUNT_PATH).relative_to("/app")
SERVER_REQUEST_FILE = "server-process.json"
SERVER_REQUEST_PATH = f"{STATE_MOUNT_PATH}/{SERVER_REQUEST_FILE}"
API_WAIT_S = 120.0


def saved_request(state_dir: Path) -> dict[str, Any] | None:
    """The last server start request `up` saved, or None (a new sandbox: `up` starts it)."""
    path = state_dir / SERVER_REQUEST_FILE
    try:
        request = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("saved server request unreadable; `pulumi up` starts the server: %s", exc)
        return None
    return request if isinstance(request, dict) and request.get("name") else None


def start_sandbox_api() -> subprocess.Popen[bytes] | None:
    """Start the sandbox API, as a custom entrypoint must (None where there is no binary)."""
    if not os.access(SANDBOX_API_PATH, os.X_OK):
        return None
    return subprocess.Popen([SANDBOX_API_PATH])


def replay(api_url: str, request: dict[str, Any], wait_s: float = API_WAIT_S) -> bool:
    """Start the saved request through the local sandbox API once it answers; False if it
    never did. A process of that name already running is left as it is."""
    from blaxel.core.client.models import Metadata, Sandbox, SandboxSpec
    from blaxel.core.sandbox.sync.sandbox import SyncSandboxInstance

    itself = Sandbox(metadata=Metadata(name="self"), spec=SandboxSpec())
    local = SyncSandboxInstance(itself, force_url=api_url)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            running = {p.name for p in local.process.list() if p.status == "running"}
            break
        except Exception as exc:  # the API is still starting: any failure means "not yet"
            if time.monotonic() > deadline:
                log.error("sandbox API never answered; the server was not started: %s", exc)
                return False
            time.sleep(0.2)
    name = str(request["name"])
    if name in running:
        log.info("server process %s already running", name)
        return True
    local.process.exec(request)
    log.info("server process %s started from the saved request", name)
    return True


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s boot %(message)s")
    api = start_sandbox_api()
    request = saved_request(STATE_DIR)
    if request is not None:
        try:
            replay(os.environ.get("SANDBOX_API_URL", LOCAL_API_URL), request)
        except Exception:  # the sandbox API must stay up even if the server could not start
            log.exception("replaying the saved server request failed")
    if api is not None:
        return api.wait()  # the entrypoint lives as long as the sandbox API, as `wait` does
    return 0


if __name__ == "__main__":
    sys.exit(main())
