"""`cma:workerImage`: what a stack adds to the worker image, validated at preview.

    cma:workerImage:
      aptPackages: [postgresql-client, unzip]       # Debian names, optionally =version
      pipPackages: [psycopg==3.2.3]                 # name==version only
      npmGlobals: [typescript@5.6.3, "@biomejs/biome"]
      files: {/etc/agent/rules.md: config/rules.md}  # image path: project-relative path
      factory: mytools.image:worker_image           # your ImageInstance, instead of worker/image.py
      image: registry.example.com/worker:1.4        # a prebuilt image, used as is (nothing built)

`parse_worker_image(values, root)` returns a `WorkerImageConfig` (JSON-able, paths relative to
the project root, so it can be a provider input and the state stays portable), with
`cma:customToolsModule` folded in; every error names its key. `build_worker_image(config,
root)` declares the image: the factory's (or `worker.image.worker_image()`) with the extras
and the custom-tools module on top. Every copied file is part of the build context, so
`infra.images.image_digest` of the result moves exactly when one of them (or a setting) does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from infra.custom_tools import CONFIG_KEY as CUSTOM_TOOLS_KEY
from infra.custom_tools import (
    CustomToolsConfigError,
    image_location,
    module_path,
    worker_location,
)
from infra.images import REPO_ROOT, Image, ImageFactoryError, is_image, resolve_factory
from worker.custom_tools import CUSTOM_TOOLS_ENV

KEY = "cma:workerImage"
# Debian policy 5.6.1: lowercase letters, digits, + - . ; at least two characters.
APT = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")
# PEP 508 names (case-insensitive) with optional extras, pinned to one PEP 440 version.
PIP = re.compile(
    r"(?i)([a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])(\[[a-z0-9._-]+(,[a-z0-9._-]+)*\])?"
    r"==([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?(\+[a-z0-9]+(\.[a-z0-9]+)*)?"
)
# npm names (optionally @scope/), optionally @version or @tag.
NPM = re.compile(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9.^~<>=*+-]+)?")
IMAGE_REF = re.compile(
    r"([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?"
)
KNOWN = {
    "apt_packages": "aptPackages",
    "pip_packages": "pipPackages",
    "npm_globals": "npmGlobals",
    "files": "files",
    "factory": "factory",
    "image": "image",
}


class WorkerImageError(ValueError):
    """`cma:workerImage` (or its custom tools) is invalid; one `key: message` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid worker image:\n  " + "\n  ".join(problems))


def _matching(pattern: re.Pattern[str], what: str) -> Any:
    """A validator: the value must match `pattern` in full."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return pydantic.AfterValidator(check)


AptPackage = Annotated[
    str, _matching(APT, "a Debian package name (lowercase letters, digits, + - .; =version)")
]
PipPackage = Annotated[str, _matching(PIP, "pinned as name==version (e.g. 'requests==2.32.3')")]
NpmPackage = Annotated[str, _matching(NPM, "an npm package name (optionally @scope/, @version)")]


class WorkerImageConfig(BaseModel):
    """The extension of the worker image; field aliases are the config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    apt_packages: list[AptPackage] = Field([], alias="aptPackages")
    pip_packages: list[PipPackage] = Field([], alias="pipPackages")
    npm_globals: list[NpmPackage] = Field([], alias="npmGlobals")
    files: dict[str, str] = {}  # image path -> path relative to the project root
    factory: str | None = None
    image: str | None = None
    custom_tools_module: str | None = None  # from cma:customToolsModule

    @pydantic.field_validator("image")
    @classmethod
    def _image_ref(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_REF.fullmatch(value):
            raise ValueError(f"{value!r} is not an image reference like 'registry/name:tag'")
        return value

    @pydantic.model_validator(mode="after")
    def _prebuilt_alone(self) -> WorkerImageConfig:
        if self.image is None:
            return self
        others = [key for name, key in KNOWN.items() if name != "image" and getattr(self, name)]
        if others:
            raise ValueError(f"image: a prebuilt image is used as is; unset {', '.join(others)}")
        if self.custom_tools_module:
            raise ValueError(
                f"image: a prebuilt image cannot carry {CUSTOM_TOOLS_KEY}; bake the tools into "
                f"it yourself (and set {CUSTOM_TOOLS_ENV}) or drop one of the two"
            )
        return self


def _decode(raw: Any) -> Any:
    if isinstance(raw, str):  # structured config may arrive as its JSON text
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise WorkerImageError([f"{KEY}: not an object ({exc})"]) from None
    return raw


def _problem(err: Mapping[str, Any]) -> str:
    path = KEY
    for part in err.get("loc") or ():
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"not a known key (known: {', '.join(KNOWN.values())})"
    if msg.startswith("image: "):
        path, msg = f"{KEY}.image", msg.removeprefix("image: ")
    return f"{path}: {msg}"


def _check_files(files: Mapping[str, str], root: Path) -> list[str]:
    problems = []
    for dest, source in files.items():
        where = f"{KEY}.files[{dest!r}]"
        image_path = PurePosixPath(dest)
        if not image_path.is_absolute() or ".." in image_path.parts:
            problems.append(f"{where}: the image path must be absolute, without '..'")
        local = (root / source).resolve()
        if Path(source).is_absolute() or not local.is_relative_to(root.resolve()):
            problems.append(f"{where}: {source!r} must be a path inside the project")
        elif not local.exists():
            problems.append(f"{where}: {source!r} does not exist")
    return problems


def _check_factory(ref: str) -> list[str]:
    """Resolve and call the factory now, so preview fails on it rather than the push."""
    try:
        image = resolve_factory(ref)()
    except ImageFactoryError as exc:
        return [f"{KEY}.factory: {exc}"]
    except Exception as exc:  # the user's code: report what it raised
        return [f"{KEY}.factory: calling {ref} raised {exc!r}"]
    if not is_image(image):
        return [f"{KEY}.factory: {ref} returned {type(image).__name__}, not an ImageInstance"]
    return []


def parse_worker_image(values: Mapping[str, Any], root: Path = REPO_ROOT) -> WorkerImageConfig:
    """`cma:workerImage` and `cma:customToolsModule` of the stack config, checked against `root`."""
    raw = _decode(values.get(KEY)) or {}
    if not isinstance(raw, dict):
        raise WorkerImageError([f"{KEY}: must be an object, got {type(raw).__name__}"])
    tools = values.get(CUSTOM_TOOLS_KEY) or None
    try:
        config = WorkerImageConfig.model_validate({**raw, "custom_tools_module": tools})
    except pydantic.ValidationError as exc:
        raise WorkerImageError([_problem(e) for e in exc.errors()]) from None
    problems = _check_files(config.files, root)
    if config.factory:
        problems += _check_factory(config.factory)
    if config.custom_tools_module:
        try:
            module_path(config.custom_tools_module, root)
        except CustomToolsConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise WorkerImageError(problems)
    return config


def build_worker_image(config: WorkerImageConfig, root: Path = REPO_ROOT) -> Image:
    """The worker image `config` declares (not for a prebuilt `image`: nothing is built)."""
    if config.image:
        raise ValueError(f"{KEY}.image: a prebuilt image is not built")
    if config.factory:
        image = resolve_factory(config.factory)()
    else:
        from worker.image import worker_image

        image = worker_image()
    if config.apt_packages:
        image = image.apt_install(*config.apt_packages)
    if config.pip_packages:
        image = image.pip_install("--no-cache-dir", *config.pip_packages)
    if config.npm_globals:
        image = image.npm_install(*config.npm_globals, global_install=True)
    # Context names are flat: the SDK writes each at the top of the build context.
    for index, (dest, source) in enumerate(sorted(config.files.items())):
        local = root / source
        add = image.add_local_dir if local.is_dir() else image.add_local_file
        image = add(str(local), dest, context_name=f"extra-file-{index}")
    if config.custom_tools_module:
        path = module_path(config.custom_tools_module, root)
        location = image_location(path)
        add = image.add_local_dir if path.is_dir() else image.add_local_file
        image = add(str(path), location, context_name=f"custom-tools-{path.name}")
        image = image.env(**{CUSTOM_TOOLS_ENV: worker_location(path)})
    return image
