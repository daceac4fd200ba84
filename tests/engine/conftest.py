from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.engine import PulumiProject, offline_env


@pytest.fixture
def pulumi_project_factory(tmp_path: Path):
    """Copies a program folder to a temp dir and gives it its own PULUMI_HOME and file backend."""

    def make(program_dir: Path, stack: str = "test") -> PulumiProject:
        work = tmp_path / "program"
        shutil.copytree(program_dir, work, ignore=shutil.ignore_patterns("__pycache__"))
        env = offline_env(tmp_path / "pulumi-home", tmp_path / "backend", "test-only-passphrase")
        project = PulumiProject(cwd=work, stack=stack, env=env)
        project.select_or_create()
        return project

    return make
