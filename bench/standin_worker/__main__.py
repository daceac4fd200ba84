"""`python -m worker` in the scheduling benchmark's image: a stdlib-only stand-in.

It does what the orchestrator and the emulator need to see a served session (the item's
environment present, one heartbeat with the item's sessions token so the lease turns active)
and then holds the sandbox for `CMA_BENCH_WORKER_HOLD` seconds (or until SIGTERM), without
importing any SDK: the figure measured is then the orchestrator's scheduling, not the CPU
cost of 200 real workers starting on 2 cores.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

REQUIRED = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_ENVIRONMENT_ID",
    "ANTHROPIC_SESSION_ID",
    "ANTHROPIC_WORK_ID",
    "ANTHROPIC_WORK_SECRET",
)
BETA = "managed-agents-2026-04-01"


def sessions_token(work_secret: str) -> str:
    """The sessions token inside a work secret (base64 JSON, padding optional)."""
    padded = work_secret + "=" * (-len(work_secret) % 4)
    payload = json.loads(base64.urlsafe_b64decode(padded))
    return str(payload["sessions_token"])


def heartbeat(env: dict[str, str]) -> int:
    """One lease heartbeat for the item; the HTTP status (0 when unreachable)."""
    url = (
        f"{env['ANTHROPIC_BASE_URL'].rstrip('/')}/v1/environments/"
        f"{env['ANTHROPIC_ENVIRONMENT_ID']}/work/{env['ANTHROPIC_WORK_ID']}/heartbeat"
    )
    request = urllib.request.Request(
        url,
        data=b"{}",
        method="POST",
        headers={
            "authorization": "Bearer " + sessions_token(env["ANTHROPIC_WORK_SECRET"]),
            "anthropic-beta": BETA,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )
    # Loopback only: the emulator; no proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def main() -> int:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        print(json.dumps({"msg": "bench worker: environment incomplete", "missing": missing}))
        return 2
    status = heartbeat(dict(os.environ))
    print(json.dumps({"msg": "bench worker serving", "heartbeat_status": status}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(float(os.environ.get("CMA_BENCH_WORKER_HOLD", "90")))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
