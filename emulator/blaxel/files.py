"""A sandbox's filesystem is a folder: absolute sandbox paths are mapped inside it."""

from __future__ import annotations

import grp
import posixpath
import pwd
import shutil
import stat
from email.utils import formatdate
from pathlib import Path
from typing import Any

from emulator.blaxel.exceptions import BadRequest, NotFound


def sandbox_path(root: Path, path: str) -> Path:
    """The host path of a sandbox path; '..' never leaves the sandbox folder."""
    normalized = posixpath.normpath("/" + str(path or "/")).lstrip("/")
    return root / normalized if normalized not in ("", ".") else root


def display_path(path: str) -> str:
    return posixpath.normpath("/" + str(path or "").lstrip("/"))


def _owner(st_uid: int, st_gid: int) -> tuple[str, str]:
    try:
        owner = pwd.getpwuid(st_uid).pw_name
    except KeyError:
        owner = str(st_uid)
    try:
        group = grp.getgrgid(st_gid).gr_name
    except KeyError:
        group = str(st_gid)
    return owner, group


def file_entry(host: Path, shown: str) -> dict[str, Any]:
    """The sandbox API's `File` for one path."""
    info = host.stat()
    owner, group = _owner(info.st_uid, info.st_gid)
    return {
        "name": posixpath.basename(shown) or "/",
        "path": shown,
        "permissions": oct(stat.S_IMODE(info.st_mode))[2:].zfill(4),
        "size": info.st_size,
        "lastModified": formatdate(info.st_mtime, usegmt=True),
        "owner": owner,
        "group": group,
    }


def list_directory(root: Path, path: str) -> dict[str, Any]:
    """The sandbox API's `Directory`: direct children split into files and subdirectories."""
    host, shown = sandbox_path(root, path), display_path(path)
    files, subdirectories = [], []
    for child in sorted(host.iterdir()):
        child_shown = posixpath.join(shown, child.name)
        if child.is_dir():
            subdirectories.append({"name": child.name, "path": child_shown})
        elif child.exists():
            files.append(file_entry(child, child_shown))
    return {
        "name": posixpath.basename(shown) or "/",
        "path": shown,
        "files": files,
        "subdirectories": subdirectories,
    }


def stat_path(root: Path, path: str) -> Path:
    host = sandbox_path(root, path)
    if not host.exists():
        raise NotFound(f"path not found: {display_path(path)}")
    return host


def write_file(root: Path, path: str, content: bytes, permissions: str | None) -> None:
    host = sandbox_path(root, path)
    if host.is_dir():
        raise BadRequest(f"path is a directory: {display_path(path)}")
    host.parent.mkdir(parents=True, exist_ok=True)
    host.write_bytes(content)
    if permissions:
        host.chmod(int(permissions, 8))


def make_directory(root: Path, path: str, permissions: str | None) -> None:
    host = sandbox_path(root, path)
    host.mkdir(parents=True, exist_ok=True)
    if permissions:
        host.chmod(int(permissions, 8))


def delete_path(root: Path, path: str, recursive: bool) -> None:
    host = stat_path(root, path)
    if host == root:
        raise BadRequest("cannot delete the root directory")
    if host.is_dir() and not host.is_symlink():
        if any(host.iterdir()) and not recursive:
            raise BadRequest(f"directory not empty: {display_path(path)}")
        shutil.rmtree(host)
    else:
        host.unlink()
