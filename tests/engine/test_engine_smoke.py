"""The built engine (CLI + Python language host) runs a dynamic provider through a whole lifecycle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.engine import engine_bin

pytestmark = pytest.mark.engine
PROGRAM = Path(__file__).parent / "smoke_program"


def test_built_engine_reports_the_pinned_version() -> None:
    version = subprocess.run(
        [str(engine_bin() / "pulumi"), "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    pinned = next(
        line.split("==")[1]
        for line in (Path(__file__).parents[2] / "requirements.txt").read_text().splitlines()
        if line.startswith("pulumi==")
    )
    assert version == f"v{pinned}"


def test_dynamic_resource_goes_through_preview_up_refresh_and_destroy(
    pulumi_project_factory, tmp_path: Path
) -> None:
    target = tmp_path / "managed.txt"
    project = pulumi_project_factory(PROGRAM)
    project.set_config("path", str(target))
    project.set_config("content", "first")

    assert project.preview_changes() == {"create": 2}  # the stack and the file
    assert not target.exists()

    project.up()
    assert target.read_text() == "first"
    assert project.outputs()["path"] == str(target)

    project.set_config("content", "second")
    project.up()
    assert target.read_text() == "second"

    target.unlink()  # out-of-band delete: refresh must notice
    refreshed = project.run("refresh", "--yes")
    assert "deleted" in refreshed.stdout
    assert project.preview_changes() == {"create": 1, "same": 1}

    project.up()
    assert project.preview_changes() == {"same": 2}
    project.run("destroy", "--yes")
    assert not target.exists()
