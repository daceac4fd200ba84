"""`cma:customToolsModule`: the user's module of tool functions, as the stack sees it.

The module is a path relative to the project root: a `.py` file, or a package directory.
`custom_tool_specs` imports it (as the worker will) and derives each tool's name, description
and input schema from the functions, so they are written once, in the code. The image copies
the module to `image_location(path)` (`infra/worker_image.py`), which puts its bytes into the
image digest: a changed tool is a new digest, an unchanged one no diff.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from worker.custom_tools import CustomToolsError, load_tools
from worker.image import APP_DIR

CONFIG_KEY = "cma:customToolsModule"
IMAGE_DIR = PurePosixPath(APP_DIR) / "custom_tools"


class CustomToolsConfigError(ValueError):
    """`cma:customToolsModule` names nothing usable; the message starts with the key."""


def module_path(ref: str, root: Path) -> Path:
    """The module file or package `ref` names under `root`; it must exist and stay inside it."""
    if not ref or Path(ref).is_absolute():
        raise CustomToolsConfigError(
            f"{CONFIG_KEY}: must be a path relative to the project root, got {ref!r}"
        )
    path = (root / ref).resolve()
    if not path.is_relative_to(root.resolve()):
        raise CustomToolsConfigError(f"{CONFIG_KEY}: {ref!r} lies outside the project")
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise CustomToolsConfigError(f"{CONFIG_KEY}: {ref!r} is a directory without __init__.py")
    if not path.is_dir() and (not path.is_file() or path.suffix != ".py"):
        raise CustomToolsConfigError(f"{CONFIG_KEY}: {ref!r} is not a .py file or a package")
    return path


def custom_tool_specs(path: Path) -> dict[str, dict[str, Any]]:
    """`{name: {description, input_schema}}` of the module's tools, in definition order."""
    try:
        tools = load_tools(path)
    except CustomToolsError as exc:
        raise CustomToolsConfigError(f"{CONFIG_KEY}: {exc}") from exc
    specs: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if not tool.description.strip():
            raise CustomToolsConfigError(
                f"{CONFIG_KEY}: tool {tool.name!r} has no description (give its function a "
                "docstring: the agent reads it to decide when to call the tool)"
            )
        specs[tool.name] = {"description": tool.description, "input_schema": tool.input_schema}
    return specs


def image_location(path: Path) -> str:
    """Where the module lies in the worker image."""
    return str(IMAGE_DIR / path.name)


def worker_location(path: Path) -> str:
    """The worker's `CMA_CUSTOM_TOOLS`: the module's place relative to the image's working dir,
    where the worker runs (an emulated sandbox lays the image out in a folder of its own, so
    only a relative path holds in both)."""
    return str((IMAGE_DIR / path.name).relative_to(APP_DIR))


def module_digest(path: Path) -> str:
    """A short digest of the module's source files (names and bytes, caches ignored): the
    agents that use its tools carry it, so a changed tool is a new agent version as well."""
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    digest = hashlib.sha256()
    for file in files:
        if "__pycache__" in file.parts:
            continue
        digest.update(f"\0{file.relative_to(path.parent).as_posix()}\0".encode())
        digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]
