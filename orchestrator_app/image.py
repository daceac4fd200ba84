"""The orchestrator image (`orchestrator_image()`), declared with the SDK's image-builder methods
on an `ImageRecipe` (no SDK import at preview).

A Python base image, the orchestrator's runtime dependencies pip-installed at the versions
requirements.txt pins (read at build time, never repeated here), and this package at
/app/orchestrator_app; the server provider starts `python -m orchestrator_app` in /app, and the
entrypoint (`orchestrator_app.boot`) starts it again whenever Blaxel rebuilds the sandbox.
Pure: it reads files, never the network.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.image_recipe import ImageRecipe

PACKAGE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = PACKAGE_DIR.parent / "requirements.txt"
BASE_IMAGE = "python:3.11-slim-bookworm"
APP_DIR = "/app"
# The distributions the orchestrator imports (their pins come from requirements.txt).
RUNTIME_DEPENDENCIES = (
    "anthropic",
    "blaxel",
    "pydantic",
    "pydantic-settings",
    "starlette",
    "uvicorn",
    "httpx",
    "anyio",
    "standardwebhooks",
)

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s#;]+)")


def runtime_pins(requirements: str, names: tuple[str, ...] = RUNTIME_DEPENDENCIES) -> list[str]:
    """The `name[extras]==version` lines of requirements.txt for `names`; KeyError if one is unpinned."""
    found: dict[str, str] = {}
    for line in requirements.splitlines():
        match = _REQUIREMENT.match(line)
        if match and match.group(1).lower() in names:
            found[match.group(1).lower()] = (
                f"{match.group(1)}{match.group(2) or ''}=={match.group(3)}"
            )
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"not pinned (name==version) in requirements.txt: {', '.join(missing)}")
    return [found[n] for n in names]


def orchestrator_image(
    *, requirements_path: Path = REQUIREMENTS, base_image: str = BASE_IMAGE
) -> ImageRecipe:
    """The orchestrator image."""
    # Quoted: `anthropic[webhooks]` is a glob pattern to the shell that runs RUN lines.
    pins = [f"'{pin}'" for pin in runtime_pins(requirements_path.read_text())]
    return (
        ImageRecipe.from_registry(base_image)
        .pip_install("--no-cache-dir", *pins)
        .workdir(APP_DIR)
        .add_local_dir(
            str(PACKAGE_DIR), f"{APP_DIR}/orchestrator_app", context_name="orchestrator_app"
        )
        .env(DO_NOT_TRACK="1", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        # Starts the sandbox API and, after a rebuild, the server again (boot.py).
        .entrypoint("python", "-m", "orchestrator_app.boot")
    )
