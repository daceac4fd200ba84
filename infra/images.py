"""Image definitions as code: resolving an image factory and its content digest.

A factory is referenced as "module:function" (e.g. "worker.image:worker_image") so that it
can travel through the state as a string and be called again by the image provider. It
returns an `ImageRecipe` (this package's images: no SDK import at preview) or the SDK's own
`ImageInstance` (a user's factory). The digest covers the generated Dockerfile and the bytes of
every file the image copies in, so an unchanged build context gives the same digest on any
machine (the SDK's own `hash` uses mtimes, which a fresh checkout changes).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from infra.image_recipe import ImageRecipe

os.environ.setdefault("DO_NOT_TRACK", "1")  # before the first blaxel import: no telemetry
# What a factory returns: a recipe, or the SDK's ImageInstance (typed loosely: no SDK import).
Image = Any

# Where the packages live (a checkout's root, or site-packages): build contexts are relative
# to it, so the state does not depend on where the project sits.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_ROOT  # older name
# Files that never belong in an image and must not move its digest.
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git", ".venv"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


class ImageFactoryError(Exception):
    """An image factory reference that cannot be resolved or does not give an ImageInstance."""


def context_path(context_dir: str) -> Path:
    """A build context as a path: relative ones are relative to the package root."""
    path = Path(context_dir)
    return path if path.is_absolute() else PACKAGE_ROOT / path


def default_image(context_dir: str) -> ImageRecipe:
    """A Python image holding `context_dir` at /app (used until a package defines its own)."""
    context = context_path(context_dir)
    image = ImageRecipe.from_registry("python:3.11-slim").workdir("/app")
    requirements = context / "requirements.txt"
    if requirements.exists():
        image = image.add_local_file(str(requirements), "/app/requirements.txt").run_commands(
            "pip install --no-cache-dir -r /app/requirements.txt"
        )
    return image.add_local_dir(str(context), "/app").env(PYTHONUNBUFFERED="1", DO_NOT_TRACK="1")


def resolve_factory(ref: str) -> Callable[..., Any]:
    """The function named by "module:function"; the repo root is importable."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ImageFactoryError(f"image factory {ref!r}: expected 'module:function'")
    if str(PACKAGE_ROOT) not in sys.path:
        sys.path.insert(0, str(PACKAGE_ROOT))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImageFactoryError(
            f"image factory {ref!r}: cannot import {module_name}: {exc}"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ImageFactoryError(f"image factory {ref!r}: {attr} is not a function of {module_name}")
    return factory


def is_image(value: object) -> bool:
    """A recipe, or the SDK's ImageInstance (only a factory that imported the SDK has one)."""
    sdk = sys.modules.get("blaxel.core.image")
    return isinstance(value, ImageRecipe) or (
        sdk is not None and isinstance(value, sdk.ImageInstance)
    )


def as_instance(image: Image) -> Any:
    """The SDK's ImageInstance of an image, for a push (imports the SDK for a recipe)."""
    return image.to_instance() if isinstance(image, ImageRecipe) else image


def load_image(ref: str, context_dir: str) -> Image:
    """Call the factory; the context directory is passed only to one that requires it."""
    factory = resolve_factory(ref)
    required = [
        p
        for p in inspect.signature(factory).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    image = factory(context_dir) if required else factory()
    if not is_image(image):
        raise ImageFactoryError(
            f"image factory {ref!r} returned {type(image).__name__}, not ImageInstance"
        )
    return image


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        rel = child.relative_to(path)
        if (
            child.is_file()
            and not (set(rel.parts) & IGNORED_PARTS)
            and child.suffix not in IGNORED_SUFFIXES
        ):
            yield child


def image_digest(image: Image) -> str:
    """sha256 of the Dockerfile and of every copied file's path and bytes."""
    digest = hashlib.sha256(image.dockerfile.encode())
    # The SDK keeps the copied files on its build context; there is no public accessor.
    locals_ = image.local_files if isinstance(image, ImageRecipe) else image._context.local_files
    for local in locals_:
        source = Path(local.source_path)
        for file in _files(source):
            rel = file.relative_to(source).as_posix() if source.is_dir() else ""
            digest.update(f"\0{local.context_name}/{rel}\0".encode())
            digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()


def choose_factory(preferred: str, fallback: str = "infra.images:default_image") -> str:
    """`preferred` if it resolves, else `fallback` (a package without its own image yet)."""
    try:
        resolve_factory(preferred)
    except ImageFactoryError:
        return fallback
    return preferred
