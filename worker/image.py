"""The worker image (`worker_image()`), declared with the SDK's image-builder methods on an
`ImageRecipe` (no SDK import at preview); the Pulumi image provider builds it.

Debian with the tools an agent expects of a sandbox (a recent Python, Node 22 LTS, git, ripgrep,
jq, curl, unzip, a C toolchain for native builds), the pinned
`anthropic` SDK (its pin read from requirements.txt, so it is written in one place), this
package at /app/worker, working dir /app, and /workspace beside it for the agent's files.
Pure: it reads files, never the network.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.image_recipe import ImageRecipe

PACKAGE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = PACKAGE_DIR.parent / "requirements.txt"
BASE_IMAGE = "python:3.13-slim-bookworm"
APP_DIR = "/app"
WORKSPACE_DIR = "/workspace"
AGENT_TOOLS = (
    "git",
    "ripgrep",
    "jq",
    "curl",
    "ca-certificates",
    "gnupg",
    "unzip",
    "zip",
    "less",
    "procps",
    "build-essential",
    "pkg-config",
)
NODE_MAJOR = 22
# Debian bookworm's own nodejs is 18 (end of life): NodeSource's signed apt repository instead
# (its documented manual install: the key, then the repository pinned to that key).
NODE_SETUP = (
    "mkdir -p /etc/apt/keyrings"
    " && curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key"
    " | gpg --dearmor -o /etc/apt/keyrings/nodesource.gpg"
    " && echo 'deb [signed-by=/etc/apt/keyrings/nodesource.gpg]"
    f" https://deb.nodesource.com/node_{NODE_MAJOR}.x nodistro main'"
    " > /etc/apt/sources.list.d/nodesource.list"
    " && apt-get update && apt-get install -y --no-install-recommends nodejs"
    " && rm -rf /var/lib/apt/lists/*"
)

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s#;]+)")


def pinned(requirements: str, name: str, *, extras: bool = True) -> str:
    """`name[extras]==version` as requirements.txt pins it; KeyError when it does not."""
    for line in requirements.splitlines():
        match = _REQUIREMENT.match(line)
        if match and match.group(1).lower() == name.lower():
            extra = (match.group(2) or "") if extras else ""
            return f"{match.group(1)}{extra}=={match.group(3)}"
    raise KeyError(f"{name} is not pinned (name==version) in requirements.txt")


def worker_image(
    *,
    requirements_path: Path = REQUIREMENTS,
    base_image: str = BASE_IMAGE,
    max_idle_seconds: float = 60.0,
) -> ImageRecipe:
    """The worker image; `max_idle_seconds` is how long a worker stays after its session idles."""
    anthropic_pin = pinned(requirements_path.read_text(), "anthropic", extras=False)
    return (
        ImageRecipe.from_registry(base_image)
        .apt_install(*AGENT_TOOLS)
        .run_commands(NODE_SETUP)
        .pip_install("--no-cache-dir", anthropic_pin)
        .run_commands(f"mkdir -p {WORKSPACE_DIR}")
        .workdir(APP_DIR)
        .add_local_dir(str(PACKAGE_DIR), f"{APP_DIR}/worker", context_name="worker")
        .env(
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            CMA_WORKER_MAX_IDLE=f"{max_idle_seconds:g}",
        )
    )
