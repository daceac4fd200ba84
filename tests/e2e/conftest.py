"""End-to-end fixtures: the real Pulumi engine runs the project against an in-process emulator.

Each test gets its own emulator, project copy, PULUMI_HOME, file backend and stack, so tests
share nothing and can run in any order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from scripts.engine import REPO_ROOT, PulumiProject, offline_env
from scripts.local_stack import LOCAL_PASSPHRASE, do_console_steps, point_at_emulator

PROJECT_PARTS = (
    "Pulumi.yaml",
    "__main__.py",
    "requirements.txt",
    "infra",
    "orchestrator_app",
    "worker",
)
STACK = "e2e"


@dataclass
class EndToEnd:
    """One emulator and one stack of the project on it."""

    server: EmulatorServer
    project: PulumiProject
    work_dir: Path

    @property
    def emulator_info(self) -> dict[str, Any]:
        config = self.server.config
        return {
            "anthropic_base_url": config.anthropic_base_url,
            "blaxel_base_url": config.blaxel_base_url,
            "console_url": config.console_url,
            "anthropic_api_key": config.anthropic_api_key,
            "blaxel_api_key": config.blaxel_api_key,
            "blaxel_workspace": config.blaxel_workspace,
        }

    def console_steps(self) -> bool:
        """Mint the environment key and register the webhook, as a user does in the Console."""
        outputs = self.project.outputs()
        return do_console_steps(
            self.project, self.emulator_info, outputs, self.work_dir / "console.json"
        )

    def run_session(self) -> str:
        """One session through the stack's agent and environment, as `examples/run_session.py`
        runs it for a user; its transcript (it ended with EXAMPLE: PASS)."""
        info = self.emulator_info
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": info["anthropic_api_key"],
            "BL_API_KEY": info["blaxel_api_key"],
            "BL_WORKSPACE": info["blaxel_workspace"],
        }
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "examples" / "run_session.py"), "--timeout", "90"],
            input=json.dumps(self.project.outputs()),
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert "EXAMPLE: PASS" in done.stdout, done.stdout + done.stderr
        return done.stdout

    def up_fully_wired(self) -> dict[str, Any]:
        """`pulumi up`, the Console steps, `pulumi up` again: the README's path, as outputs."""
        self.project.up()
        self.console_steps()
        self.project.up()
        return self.project.outputs()


def another_stack(e2e: EndToEnd, stack: str, **config: str) -> EndToEnd:
    """A second stack of the same project, backend and emulator (the committed local config,
    plus `config`)."""
    shutil.copy(e2e.project.cwd / f"Pulumi.{STACK}.yaml", e2e.project.cwd / f"Pulumi.{stack}.yaml")
    project = PulumiProject(cwd=e2e.project.cwd, stack=stack, env=e2e.project.env)
    project.select_or_create()
    work_dir = e2e.work_dir / stack
    work_dir.mkdir()
    other = EndToEnd(server=e2e.server, project=project, work_dir=work_dir)
    point_at_emulator(project, other.emulator_info)
    for key, value in config.items():
        project.set_config(key, value)
    return other


def copy_project(destination: Path, source_root: Path = REPO_ROOT) -> Path:
    """A checkout of the project at `destination`, with its `.venv` (a link to ours), as
    Pulumi.yaml's `virtualenv: .venv` expects."""
    destination.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PROJECT_PARTS:
        source = source_root / part
        if source.is_dir():
            shutil.copytree(source, destination / part, ignore=ignore)
        elif source.exists():
            shutil.copy(source, destination / part)
    (destination / ".venv").symlink_to(Path(sys.executable).parent.parent)
    # The committed local stack's settings (and its passphrase salt) for this test stack.
    shutil.copy(source_root / "Pulumi.local.yaml", destination / f"Pulumi.{STACK}.yaml")
    return destination


def make_end_to_end(server: EmulatorServer, tmp: Path) -> EndToEnd:
    """The project copied under `tmp`, with its own home, backend and stack pointed at `server`."""
    work_dir = copy_project(tmp / "project")
    env = offline_env(tmp / "pulumi-home", tmp / "backend", LOCAL_PASSPHRASE)
    project = PulumiProject(cwd=work_dir, stack=STACK, env=env)
    project.select_or_create()
    end_to_end = EndToEnd(server=server, project=project, work_dir=tmp)
    point_at_emulator(project, end_to_end.emulator_info)
    return end_to_end


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[EndToEnd]:
    # Nothing outlives the test: the emulator's stop kills every sandbox process it started (the
    # stack's orchestrator and workers), and the stack's state lives in tmp_path. A `destroy`
    # here (15-20 s a test) would only repeat what test_destroy_leaves_nothing_… pins.
    with EmulatorServer(data_dir=tmp_path / "emulator", timing=fast_timing()) as server:
        yield make_end_to_end(server, tmp_path)
