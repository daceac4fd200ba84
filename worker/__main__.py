"""`python -m worker`: serve the one work item named in the environment, then exit.

Exit codes: 0 served (or ended cleanly by SIGTERM/SIGINT), 2 the environment is incomplete,
1 serving failed (the reason is logged). The agent's tools run in the workspace folder, which
sits beside the image's working dir (`/workspace` next to `/app`), so they never see this code.
"""

from __future__ import annotations

import os

# Set before anything can import an SDK that phones home.
os.environ.setdefault("DO_NOT_TRACK", "1")

import asyncio
import base64
import json
import logging
import signal
import sys
from pathlib import Path

REQUIRED = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_ENVIRONMENT_ID",
    "ANTHROPIC_SESSION_ID",
    "ANTHROPIC_WORK_ID",
)
# One credential: the per-item secret, or (only when the operator enabled the orchestrator's
# fallback for secrets without a sessions token) the environment key.
CREDENTIALS = ("ANTHROPIC_WORK_SECRET", "ANTHROPIC_ENVIRONMENT_KEY")
# Seconds to keep serving after the session goes idle (the image may set it; SDK default 60).
MAX_IDLE_ENV = "CMA_WORKER_MAX_IDLE"

log = logging.getLogger("worker")


class _JsonLines(logging.Formatter):
    """One JSON object a line, with the work secret and what it carries replaced (a safety net:
    neither this program nor the SDK logs them)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str)
        for secret in self.secrets:
            line = line.replace(secret, "[redacted]")
        return line


def secret_values(work_secret: str) -> list[str]:
    """The work secret and every string inside its (base64 JSON) payload."""
    values = [work_secret]
    try:
        padded = work_secret + "=" * (-len(work_secret) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return values
    if isinstance(payload, dict):
        values += [v for v in payload.values() if isinstance(v, str)]
    return values


def missing_env(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The required variables that are unset or empty (a credential counts as one)."""
    missing = [name for name in REQUIRED if not environ.get(name)]
    if not any(environ.get(name) for name in CREDENTIALS):
        missing.append(" or ".join(CREDENTIALS))
    return missing


def workspace_dir(cwd: Path) -> Path:
    """Where the agent's tools work: `workspace` beside the working dir (`/app` → `/workspace`)."""
    return cwd.resolve().parent / "workspace"


def max_idle(environ: dict[str, str] | os._Environ[str]) -> float:
    raw = environ.get(MAX_IDLE_ENV, "")
    try:
        return float(raw) if raw else 60.0
    except ValueError:
        return 60.0


async def serve(environ: dict[str, str] | os._Environ[str]) -> None:
    """Serve the item with EnvironmentWorker.handle_item, authenticated by the work secret."""
    from anthropic import AsyncAnthropic
    from anthropic.lib.environments import EnvironmentWorker

    from worker.custom_tools import worker_tools

    workdir = workspace_dir(Path.cwd())
    workdir.mkdir(parents=True, exist_ok=True)
    # No credential on the client itself: every call rides the item's sessions token.
    client = AsyncAnthropic(base_url=environ["ANTHROPIC_BASE_URL"], auth_token="")
    try:
        # The agent toolset (bash, read, write, edit, glob, grep), bound per session to `workdir`,
        # and the custom tools the image carries (CMA_CUSTOM_TOOLS).
        worker = EnvironmentWorker(
            client, tools=worker_tools(environ), workdir=workdir, max_idle=max_idle(environ)
        )
        await worker.handle_item(
            work_id=environ["ANTHROPIC_WORK_ID"],
            environment_id=environ["ANTHROPIC_ENVIRONMENT_ID"],
            session_id=environ["ANTHROPIC_SESSION_ID"],
            work_secret=environ.get("ANTHROPIC_WORK_SECRET") or None,
            environment_key=environ.get("ANTHROPIC_ENVIRONMENT_KEY") or None,
        )
    finally:
        await client.close()


async def _run_until_signal(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Serve; SIGTERM/SIGINT cancel the serving task (the SDK then stops the item). True if signalled."""
    task = asyncio.create_task(serve(environ))
    signalled = False

    def on_signal() -> None:
        nonlocal signalled
        signalled = True
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        if not signalled:
            raise
    return signalled


def main() -> int:
    handler = logging.StreamHandler(sys.stderr)
    secrets = secret_values(os.environ.get("ANTHROPIC_WORK_SECRET", ""))
    secrets.append(os.environ.get("ANTHROPIC_ENVIRONMENT_KEY", ""))
    handler.setFormatter(_JsonLines(secrets))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    missing = missing_env(os.environ)
    if missing:
        log.error("cannot serve: missing environment variables %s", ", ".join(missing))
        return 2
    session_id = os.environ["ANTHROPIC_SESSION_ID"]
    work_id = os.environ["ANTHROPIC_WORK_ID"]
    try:
        signalled = asyncio.run(_run_until_signal(os.environ))
    except BaseException as exc:  # the process boundary: log the reason, exit non-zero
        log.error("serving failed session_id=%s work_id=%s error=%r", session_id, work_id, exc)
        return 1
    log.info(
        "%s session_id=%s work_id=%s",
        "stopped by signal" if signalled else "served",
        session_id,
        work_id,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
