"""README's first command on a fresh clone: `scripts/local-up` passes and leaves `git status` clean.

The e2e tests copy the tracked `Pulumi.local.yaml` as their stack's settings, so local-up must
keep every value it sets per run (emulator URLs, minted secrets) under `.state/`; and
`scripts/pulumi` must then drive that same stack.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.engine import REPO_ROOT
from tests.orchestrator_app.emulated import free_loopback_port

pytestmark = pytest.mark.engine


def fresh_clone(destination: Path) -> Path:
    """The working tree's tracked files, committed in a new repository (a clone of this tree)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=destination, check=True)
    # Reuse this checkout's venv instead of installing it again. `.venv/` in .gitignore matches a
    # folder, not this symlink: exclude it locally (ignoring it changes no tracked file).
    (destination / ".venv").symlink_to(REPO_ROOT / ".venv")
    with (destination / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")
    return destination


PORT = free_loopback_port()  # the clone's emulator, apart from a developer's own local stack


def run(clone: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CMA_EMULATOR_PORT": str(PORT)}
    return subprocess.run(
        list(command), cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )


def test_local_up_on_a_fresh_clone_passes_and_leaves_every_tracked_file_unchanged(
    tmp_path: Path,
) -> None:
    clone = fresh_clone(tmp_path / "clone")
    try:
        up = run(clone, "scripts/local-up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "EXAMPLE: PASS" in up.stdout
        status = run(clone, "git", "status", "--porcelain").stdout
        assert status == "", f"local-up changed tracked files:\n{status}"

        # The status command finds the example session's worker sandbox among the stack's.
        served_by = re.search(r"served by worker sandbox (\S+)", up.stdout)
        assert served_by, up.stdout
        report = run(clone, ".venv/bin/python", "-m", "infra.status", "--local", "--json")
        assert report.returncode == 0, report.stdout + report.stderr
        workers = [w["sandbox"] for w in json.loads(report.stdout)["workers"]]
        assert served_by.group(1) in workers

        # The wrapper drives the same stack: its settings, its secrets, no pending change.
        preview = run(clone, "scripts/pulumi", "preview", "--diff", "--json")
        assert preview.returncode == 0, preview.stdout + preview.stderr
        assert set(json.loads(preview.stdout)["changeSummary"]) == {"same"}
        outputs = run(clone, "scripts/pulumi", "stack", "output", "--json")
        assert json.loads(outputs.stdout)["next_steps"] == []
        assert run(clone, "git", "status", "--porcelain").stdout == ""

        again = run(clone, "scripts/local-up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "EXAMPLE: PASS" in again.stdout
    finally:
        down = run(clone, "scripts/local-down")
        assert down.returncode == 0, down.stdout + down.stderr
