"""What a sandbox's folder holds besides its image: mounted volumes, and its processes' env."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from emulator.blaxel import files, specs
from emulator.blaxel.exceptions import BadRequest
from emulator.blaxel.records import Sandbox, Volume

# Host variables a sandbox process inherits: the shell basics and the proxy guard tests set.
PASSTHROUGH_ENV = (
    "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)  # fmt: skip


def check_attachments(name: str, spec: dict[str, Any], volumes: dict[str, Volume]) -> None:
    """A persistent volume named in the spec must exist and be free (or already ours): 400."""
    for attachment in spec.get("volumes") or []:
        if attachment.get("type") == "ephemeral":
            continue
        volume = volumes.get(attachment["name"])
        if volume is None:
            raise BadRequest(f"Volume '{attachment['name']}' not found", code="VOLUME_NOT_FOUND")
        volume_region, sandbox_region = volume.spec.get("region"), spec.get("region")
        if volume_region and sandbox_region and volume_region != sandbox_region:
            # "Must match the region of sandboxes it attaches to" (SDK models/volume_spec.py).
            raise BadRequest(
                f"Volume '{volume.name}' is in {volume_region}, the sandbox in {sandbox_region}",
                code="INVALID_VOLUME_REGION",
            )
        if volume.attached_to not in ("", f"sandbox:{name}"):
            raise BadRequest(
                f"Volume '{volume.name}' is already attached to {volume.attached_to}",
                code="VOLUME_ALREADY_ATTACHED",
            )


def mount(name: str, root: Path, spec: dict[str, Any], volumes: dict[str, Volume]) -> None:
    """Link each volume's folder at its mount path (ephemeral ones get a fresh folder)."""
    for attachment in spec.get("volumes") or []:
        target = files.sandbox_path(root, attachment["mountPath"])
        target.parent.mkdir(parents=True, exist_ok=True)
        volume = volumes.get(attachment["name"])
        if volume is None:  # ephemeral: scratch space that dies with the sandbox
            target.mkdir(exist_ok=True)
            continue
        shutil.rmtree(target, ignore_errors=True)
        target.symlink_to(volume.path, target_is_directory=True)
        volume.attached_to = f"sandbox:{name}"


def detach(name: str, volumes: dict[str, Volume]) -> None:
    for volume in volumes.values():
        if volume.attached_to == f"sandbox:{name}":
            volume.attached_to = ""


def process_env(
    sandbox: Sandbox, extra: dict[str, Any], path_prefix: tuple[str, ...]
) -> dict[str, str]:
    """Image ENV, then the spec's envs, then the request's; PORT; our interpreter first on PATH."""
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    home = files.sandbox_path(sandbox.root, "/root")
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env.update(sandbox.layout.env)
    env.update(specs.env_values(sandbox.spec))
    env.update({str(k): str(v) for k, v in extra.items()})
    ports = specs.runtime_ports(sandbox.spec)
    if ports:
        env["PORT"] = str(sandbox.ports[ports[0]])
    env["DO_NOT_TRACK"] = "1"
    # The emulator's interpreter first: `python` has every pinned package.
    first = [*path_prefix, str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*first, env.get("PATH") or os.environ.get("PATH", "")])
    return env
