"""The program through the real engine, beyond the README path that tests/e2e covers:
config errors at preview time and the `api` webhook mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from scripts.engine import PulumiProject, offline_env
from scripts.local_stack import LOCAL_PASSPHRASE, point_at_emulator
from tests.e2e.conftest import STACK, copy_project

pytestmark = pytest.mark.engine


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[PulumiProject, EmulatorServer]]:
    """A copy of the project, its own engine home and backend, pointed at a fresh emulator."""
    with EmulatorServer(data_dir=tmp_path / "emulator", timing=fast_timing()) as server:
        work_dir = copy_project(tmp_path / "project")
        env = offline_env(tmp_path / "pulumi-home", tmp_path / "backend", LOCAL_PASSPHRASE)
        project = PulumiProject(cwd=work_dir, stack=STACK, env=env)
        project.select_or_create()
        c = server.config
        point_at_emulator(
            project,
            {
                "anthropic_base_url": c.anthropic_base_url,
                "blaxel_base_url": c.blaxel_base_url,
                "blaxel_workspace": c.blaxel_workspace,
                "anthropic_api_key": c.anthropic_api_key,
                "blaxel_api_key": c.blaxel_api_key,
            },
        )
        try:
            yield project, server
        finally:
            project.run("destroy", "--yes", check=False)


def test_preview_with_bad_config_names_each_key_and_shows_no_traceback(
    stack: tuple[PulumiProject, EmulatorServer],
) -> None:
    project, server = stack
    project.set_config("cma:webhookMode", "email")
    project.set_config("blaxel:orchestratorSandboxName", "Not_A_Name")
    done = project.run("preview", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "cma:webhookMode: must be one of 'console' or 'api', got 'email'" in output
    assert "blaxel:orchestratorSandboxName: must be lowercase letters" in output
    assert "Traceback" not in output
    assert not server.emulator.blaxel.sandboxes
