"""Worker sandboxes on paper: their names, create spec and worker process request (pure).

One sandbox per session, named from the session id; the worker process in it gets only the
work item's coordinates and its per-item secret. `orchestrator_app.sandboxes` sends these
through the Blaxel SDK.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from blaxel.core.sandbox import sanitize_sandbox_name

from orchestrator_app.settings import Settings

NAME_MAX = 49
WORKER_COMMAND = "python -m worker"
ROLE_LABEL = "cma-role"
SESSION_LABEL = "cma-session-id"  # the raw session id (examples/run_session.py looks it up)
ENVIRONMENT_LABEL = "cma-environment-id"
PROXY_SECRET_NAME = "worker-proxy-secret"
MAX_IDLE_ENV = "CMA_WORKER_MAX_IDLE"  # read by worker/__main__.py


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


def sessions_token_of(work_secret: str | None) -> str | None:
    """The `sessions_token` inside a work secret (URL-safe base64 JSON, padding optional), or
    None when the secret is missing, unreadable or carries none (the SDK's own rule:
    `anthropic/lib/environments/_worker.py::_sessions_token_from_secret`)."""
    if not work_secret:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(work_secret + "=" * (-len(work_secret) % 4)))
    except (ValueError, TypeError):
        return None
    token = payload.get("sessions_token") if isinstance(payload, dict) else None
    return token if isinstance(token, str) and token else None


def worker_process_env(
    *,
    base_url: str,
    environment_id: str,
    session_id: str,
    work_id: str,
    work_secret: str | None,
    max_idle_seconds: float,
    fallback_environment_key: str | None = None,
) -> dict[str, str]:
    """Exactly what the worker needs (docs/contracts.md): the item's coordinates and its secret;
    the environment key only when the operator enabled the fallback and the secret has no token."""
    env = {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_ENVIRONMENT_ID": environment_id,
        "ANTHROPIC_SESSION_ID": session_id,
        "ANTHROPIC_WORK_ID": work_id,
        MAX_IDLE_ENV: f"{max_idle_seconds:g}",
    }
    if work_secret:
        env["ANTHROPIC_WORK_SECRET"] = work_secret
    if fallback_environment_key is not None:
        env["ANTHROPIC_ENVIRONMENT_KEY"] = fallback_environment_key
    return env


def worker_process_request(settings: Settings, env: dict[str, str], work_id: str) -> dict[str, Any]:
    """The sandbox API's process request that starts the worker and returns at once."""
    return {
        "name": worker_process_name(work_id),
        "command": WORKER_COMMAND,
        "working_dir": settings.worker_workdir,
        "env": env,
        "wait_for_completion": False,
        # Keep the sandbox from going to standby while the worker serves the session; the
        # worker ends itself `worker_max_idle_seconds` after the session idles, and the
        # sandbox then goes to standby with its /workspace until the next turn.
        "keep_alive": settings.worker_keep_alive,
        "timeout": settings.worker_max_lifetime_seconds,
    }


def worker_labels(settings: Settings, session_id: str) -> dict[str, str]:
    """The labels of a session's sandbox and volume (the stack's destroy finds them by these)."""
    return {
        ROLE_LABEL: "worker",
        SESSION_LABEL: session_id,
        ENVIRONMENT_LABEL: settings.environment_id or "",
    }


def expiration_policies(settings: Settings) -> list[dict[str, str]]:
    """Blaxel lifecycle policies: delete after `worker_idle_ttl` idle, and at the hard cap."""
    policies = [{"type": "ttl-idle", "value": settings.worker_idle_ttl, "action": "delete"}]
    if settings.worker_max_age:
        policies.append(
            {"type": "ttl-max-age", "value": settings.worker_max_age, "action": "delete"}
        )
    return policies


def worker_volume_spec(settings: Settings, session_id: str) -> dict[str, Any]:
    """The create request of a session's optional volume (deleted with its sandbox)."""
    return {
        "name": worker_volume_name(session_id),
        "size": settings.worker_volume_size_mb,
        "region": settings.worker_region,
        "labels": worker_labels(settings, session_id),
    }


def worker_sandbox_spec(settings: Settings, session_id: str) -> dict[str, Any]:
    """The create request of a session's worker sandbox (SandboxCreateConfiguration keys).

    It lives across turns (standby between them) and goes when its session ends (the
    orchestrator deletes it) or after `worker_idle_ttl` without use (Blaxel's `ttl-idle`
    policy: a long active session is never cut mid-turn); `worker_max_age`, when set, is a hard
    cap counted from creation (`ttl-max-age`). A proxy secret goes only into the network proxy's routing rule
    (write-only on Blaxel's side), never into an env var.
    """
    spec: dict[str, Any] = {
        "name": worker_sandbox_name(session_id),
        "image": settings.worker_image,
        "memory": settings.worker_memory_mb,
        "labels": worker_labels(settings, session_id),
        "lifecycle": {"expiration_policies": expiration_policies(settings)},
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
