"""The program's first line makes the engine start the dynamic provider host, before any
resource is registered (infra/provider_warmup.py says why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.engine import REPO_ROOT

pytestmark = pytest.mark.engine
PROGRAM = Path(__file__).parent / "warmup_program"


def test_the_warmup_starts_the_provider_host_in_a_program_without_resources(
    pulumi_project_factory,
) -> None:
    project = pulumi_project_factory(PROGRAM)
    project.env["PYTHONPATH"] = str(REPO_ROOT)  # the program imports infra from this checkout

    project.up()

    assert project.outputs()["providerHostStarted"] is True
    assert project.preview_changes() == {"same": 1}  # the stack alone: no provider resource shows
