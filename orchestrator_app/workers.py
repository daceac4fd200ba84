"""Worker sandboxes on paper: their names, create spec and worker process request (pure).

One sandbox per session, named from the session id; the worker process in it gets only the
work item's coordinates and its per-item secret. `orchestrator_app.sandboxes` sends these
through the Blaxel SDK.
"""

from __future__ import annotations

import hashlib
from typing import Any

from blaxel.core.sandbox import sanitize_sandbox_name

from orchestrator_app.settings import Settings

NAME_MAX = 49
WORKER_COMMAND = "python -m worker"
ROLE_LABEL = "cma-role"
SESSION_LABEL = "cma-session-id"  # the raw session id (examples/run_session.py looks it up)
ENVIRONMENT_LABEL = "cma-environment-id"
PROXY_SECRET_NAME = "worker-proxy-secret"


def _stable_name(prefix: str, key: str) -> str:
    """`<prefix>-<readable part of key>-<8 hex of its hash>`: valid, ≤ 49 chars, unique per key."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    room = NAME_MAX - len(prefix) - len(digest) - 2
    try:
        readable = sanitize_sandbox_name(key)[:room].strip("-")
    except ValueError:
        readable = ""
    return "-".join(part for part in (prefix, readable, digest) if part)


def worker_sandbox_name(session_id: str) -> str:
    """The worker sandbox name of a session: stable, lowercase/digits/hyphens, at most 49 chars.

    The hash keeps ids that differ only by case (session ids are case-sensitive) apart.
    """
    return _stable_name("w", session_id)


def worker_volume_name(session_id: str) -> str:
    """The per-session volume's name (same rule as sandbox names)."""
    return _stable_name("v", session_id)


def worker_process_name(work_id: str) -> str:
    """The worker process name inside the sandbox: one per work item."""
    return _stable_name("worker", work_id)


def worker_process_env(
    *, base_url: str, environment_id: str, session_id: str, work_id: str, work_secret: str
) -> dict[str, str]:
    """Exactly what the worker needs (docs/contracts.md): never the environment key or an API key."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_ENVIRONMENT_ID": environment_id,
        "ANTHROPIC_SESSION_ID": session_id,
        "ANTHROPIC_WORK_ID": work_id,
        "ANTHROPIC_WORK_SECRET": work_secret,
    }


def worker_process_request(settings: Settings, env: dict[str, str], work_id: str) -> dict[str, Any]:
    """The sandbox API's process request that starts the worker and returns at once."""
    return {
        "name": worker_process_name(work_id),
        "command": WORKER_COMMAND,
        "working_dir": settings.worker_workdir,
        "env": env,
        "wait_for_completion": False,
        # Keep the sandbox from scaling to zero while the worker serves the session;
        # the worker ends itself when the session has been idle long enough.
        "keep_alive": True,
        "timeout": 0,
    }


def worker_sandbox_spec(settings: Settings, session_id: str) -> dict[str, Any]:
    """The create request of a session's worker sandbox (SandboxCreateConfiguration keys).

    The max-age policy is a last resort: the orchestrator deletes the sandbox itself once the
    session's work has ended. A proxy secret goes only into the network proxy's routing rule
    (write-only on Blaxel's side), never into an env var.
    """
    spec: dict[str, Any] = {
        "name": worker_sandbox_name(session_id),
        "image": settings.worker_image,
        "memory": settings.worker_memory_mb,
        "labels": {
            ROLE_LABEL: "worker",
            SESSION_LABEL: session_id,
            ENVIRONMENT_LABEL: settings.environment_id or "",
        },
        "lifecycle": {
            "expiration_policies": [
                {"type": "ttl-max-age", "value": settings.worker_max_age, "action": "delete"}
            ]
        },
    }
    if settings.worker_region:
        spec["region"] = settings.worker_region
    if settings.worker_proxy_secret is not None and settings.worker_proxy_destinations:
        header_value = settings.worker_proxy_header_format.format(
            secret="{{SECRET:" + PROXY_SECRET_NAME + "}}"
        )
        spec["network"] = {
            "proxy": {
                "routing": [
                    {
                        "destinations": list(settings.worker_proxy_destinations),
                        "headers": {settings.worker_proxy_header: header_value},
                        "secrets": {
                            PROXY_SECRET_NAME: settings.worker_proxy_secret.get_secret_value()
                        },
                    }
                ]
            }
        }
    if settings.worker_volume_size_mb:
        spec["volumes"] = [
            {
                "name": worker_volume_name(session_id),
                "mount_path": settings.worker_volume_mount_path,
                "read_only": False,
            }
        ]
    return spec
