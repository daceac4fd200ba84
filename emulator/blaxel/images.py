"""Pushed images: zipped build contexts, stored as folders, laid into sandbox folders.

A build context is what `ImageInstance.build()` (or `bl push`) uploads: a Dockerfile plus the
files it copies. The emulator does not run containers: a sandbox created from an image gets the
Dockerfile's `WORKDIR`, `ENV` and local `COPY`/`ADD` effects in its folder; `RUN` lines (apt,
pip, ...) are skipped because sandbox processes use the emulator's own interpreter.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import re
import shlex
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from emulator.blaxel.exceptions import BadRequest, NotFound
from emulator.blaxel.files import sandbox_path

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# What `docker run` gives a process when no image sets PATH (moby's defaultPathEnv for
# Linux): a Dockerfile's `ENV PATH=/x:${PATH}` extends this, never an empty PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# Public images of the Blaxel hub (github.com/blaxel-ai/sandbox, "hub" folder) a sandbox may
# name without a push; the emulator gives them an empty file system with the default PATH.
HUB_IMAGES = (
    "base-image", "py-app", "ts-app", "node", "nextjs", "vite", "expo", "astro",
    "jupyter-server", "python-data-science", "playwright-chromium", "playwright-firefox",
)  # fmt: skip


def is_hub_image(ref: str) -> bool:
    """`blaxel/<hub image>[:tag]` (pure)."""
    path = ref.split(":", 1)[0]
    owner, _, name = path.partition("/")
    return owner == "blaxel" and name in HUB_IMAGES


@dataclass
class Image:
    """One pushed tag of a sandbox image."""

    ref: str  # what a sandbox spec names: <workspace>/sandbox/<name>:<tag>
    name: str
    tag: str
    context_dir: Path
    size: int  # bytes uploaded
    digest: str  # sha256 of the uploaded archive
    created_at: float = field(default_factory=time.time)


@dataclass
class Layout:
    """What an image leaves in a sandbox beyond its files: working dir, environment, and the
    command the sandbox starts with (ENTRYPOINT then CMD, exec form)."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    @property
    def start_command(self) -> list[str]:
        return [*self.entrypoint, *self.cmd]


def image_ref(workspace: str, name: str, tag: str) -> str:
    return f"{workspace}/sandbox/{name}:{tag}"


def _split_ref(ref: str, workspace: str) -> tuple[str, str]:
    """(name, tag) of any spelling: ws/sandbox/name:tag, sandbox/name, name (tag latest)."""
    path, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == workspace and parts[1] == "sandbox":
        parts = parts[2:]
    elif len(parts) == 2 and parts[0] in ("sandbox", workspace):
        parts = parts[1:]
    return ("/".join(parts), tag or "latest")


class ImageStore:
    """Every pushed image of the workspace, kept under `root`."""

    def __init__(self, root: Path, workspace: str) -> None:
        self.root = root
        self.workspace = workspace
        self._lock = threading.Lock()
        self._images: dict[tuple[str, str], Image] = {}
        self._latest: dict[str, Image] = {}

    def push(self, name: str, archive: bytes) -> Image:
        """Store a zipped build context; BadRequest when it is not a usable one."""
        digest = hashlib.sha256(archive).hexdigest()
        tag = digest[:12]
        target = self.root / name / tag
        try:
            with zipfile.ZipFile(io.BytesIO(archive)) as zf:
                names = zf.namelist()
                if "Dockerfile" not in names:
                    raise BadRequest("build context has no Dockerfile at its root")
                if target.exists():
                    shutil.rmtree(target)
                target.mkdir(parents=True)
                for member in names:
                    dest = (target / member).resolve()
                    if not dest.is_relative_to(target.resolve()):
                        raise BadRequest(f"archive member escapes the context: {member}")
                zf.extractall(target)
        except zipfile.BadZipFile as exc:
            raise BadRequest(f"uploaded archive is not a zip file: {exc}") from exc
        image = Image(image_ref(self.workspace, name, tag), name, tag, target, len(archive), digest)
        with self._lock:
            self._images[(name, tag)] = image
        return image

    def deployed(self, image: Image) -> None:
        """The build of `image` is over: `:latest` now names it (a sandbox created from
        `<name>:latest` gets the newest *deployed* version, docs.blaxel.ai knowledge base
        "Ensure sandboxes use the latest deployed image"; one still building is not it)."""
        with self._lock:
            if self._images.get((image.name, image.tag)) is image:
                self._latest[image.name] = image

    def resolve(self, ref: str) -> Image | None:
        """The pushed image a spec names; None for images the emulator never received."""
        name, tag = _split_ref(ref, self.workspace)
        with self._lock:
            if tag == "latest":
                return self._latest.get(name)
            return self._images.get((name, tag))

    def pushed(self) -> list[Image]:
        with self._lock:
            return list(self._images.values())

    def tags(self, name: str) -> list[Image]:
        """Every pushed tag of an image, oldest first; NotFound when there is none."""
        with self._lock:
            found = [image for (n, _), image in self._images.items() if n == name]
        if not found:
            raise NotFound(f"Image 'sandbox/{name}' not found", code="IMAGE_NOT_FOUND")
        return sorted(found, key=lambda image: image.created_at)

    def delete(self, name: str) -> list[Image]:
        """Forget every tag of an image (sandboxes already laid out keep their files)."""
        tags = self.tags(name)
        with self._lock:
            for image in tags:
                self._images.pop((name, image.tag), None)
            self._latest.pop(name, None)
        shutil.rmtree(self.root / name, ignore_errors=True)
        return tags

    def reset(self) -> None:
        with self._lock:
            self._images.clear()
            self._latest.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def image_view(tags: list[Image], workspace: str, with_tags: bool) -> dict[str, Any]:
    """The control plane's `ImageSummary` (or `Image` with its tags) for one image's tags."""
    latest = tags[-1]
    metadata = {
        "name": latest.name,
        "displayName": f"{workspace}/sandbox/{latest.name}",
        "resourceType": "sandbox",
        "workspace": workspace,
        "createdAt": _iso(tags[0].created_at),
        "updatedAt": _iso(latest.created_at),
        "lastDeployedAt": _iso(latest.created_at),
    }
    spec: dict[str, Any] = {"size": sum(t.size for t in tags)}
    if with_tags:
        spec["tags"] = [tag_view(t) for t in tags]
    else:
        spec["tagCount"] = len(tags)
    return {"metadata": metadata, "spec": spec}


def tag_view(image: Image) -> dict[str, Any]:
    created = _iso(image.created_at)
    return {"name": image.tag, "size": image.size, "createdAt": created, "updatedAt": created}


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def lay_out(image: Image, root: Path) -> Layout:
    """Apply the image's final stage to a sandbox folder: WORKDIR, ENV, local COPY/ADD.

    Only the last `FROM` stage makes the image (earlier stages of a multi-stage build are
    build-only: their files reach the result through `COPY --from`, not emulated). The
    environment starts from Docker's default PATH, so `${PATH}` expands against it.
    """
    parser = DockerfileParser(fileobj=io.BytesIO())
    parser.content = (image.context_dir / "Dockerfile").read_text()
    steps = final_stage(parser.structure)
    layout = Layout(env={"PATH": DEFAULT_PATH})
    for step in steps:
        instruction, value = step["instruction"], _expand(step["value"], layout.env)
        if instruction == "WORKDIR":
            layout.workdir = posixpath.normpath(posixpath.join(layout.workdir, value))
            sandbox_path(root, layout.workdir).mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            layout.env.update(_parse_env(value))
        elif instruction in ("COPY", "ADD"):
            _copy(image.context_dir, root, layout.workdir, value)
        elif instruction == "ENTRYPOINT":
            layout.entrypoint, layout.cmd = exec_form(step["value"]), []  # Docker resets CMD
        elif instruction == "CMD":
            layout.cmd = exec_form(step["value"])
    return layout


def exec_form(value: str) -> list[str]:
    """An ENTRYPOINT/CMD value as argv: the JSON exec form, else the shell form (pure)."""
    if value.lstrip().startswith("["):
        with contextlib.suppress(ValueError):
            words = json.loads(value)
            if isinstance(words, list) and all(isinstance(w, str) for w in words):
                return list(words)
    return ["/bin/sh", "-c", value]


def hub_layout() -> Layout:
    """A hub image: nothing laid out, Docker's default PATH."""
    return Layout(env={"PATH": DEFAULT_PATH})


def final_stage(structure: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The instructions after the last FROM (all of them when there is no FROM) (pure)."""
    starts = [i for i, step in enumerate(structure) if step["instruction"] == "FROM"]
    return structure[starts[-1] + 1 :] if starts else list(structure)


def _expand(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _parse_env(value: str) -> dict[str, str]:
    words = shlex.split(value)
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words if "=" in word)


def _copy(context: Path, root: Path, workdir: str, value: str) -> None:
    words = json.loads(value) if value.lstrip().startswith("[") else shlex.split(value)
    if any(w.startswith("--from") for w in words):
        return  # another image's files (e.g. Blaxel's sandbox-api binary): not emulated
    words = [w for w in words if not w.startswith("--")]
    if len(words) < 2:
        return
    *sources, dest = words
    dest_path = sandbox_path(root, posixpath.join(workdir, dest))
    into_dir = dest.endswith("/") or len(sources) > 1 or dest_path.is_dir()
    for pattern in sources:
        clean = pattern.strip("/")
        matches = [context] if clean in ("", ".") else sorted(context.glob(clean))
        for source in matches:
            if source.is_dir():
                _copy_tree(source, dest_path)  # Docker copies a directory's contents
            elif into_dir:
                dest_path.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest_path / source.name)
            else:
                dest_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest_path)


def _copy_tree(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=True)
