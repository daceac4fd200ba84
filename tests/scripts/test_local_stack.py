"""The local-stack script's command lines: the stack's config file reaches every command that reads config."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from scripts.engine import REPO_ROOT, PulumiProject
from scripts.local_stack import pulumi_argv

CONFIG = Path("/state/Pulumi.local.yaml")


def test_preview_diff_gets_the_local_config_file() -> None:
    assert pulumi_argv(["preview", "--diff"], CONFIG) == [
        "pulumi",
        "preview",
        "--diff",
        "--config-file",
        str(CONFIG),
    ]


def test_config_subcommands_get_the_config_file_before_a_double_dash() -> None:
    argv = pulumi_argv(["config", "set", "cma:model", "--", "-odd"], CONFIG)
    assert argv == [
        "pulumi",
        "config",
        "set",
        "cma:model",
        "--config-file",
        str(CONFIG),
        "--",
        "-odd",
    ]


def test_commands_that_read_no_config_are_passed_through_unchanged() -> None:
    assert pulumi_argv(["stack", "output", "--json"], CONFIG) == [
        "pulumi",
        "stack",
        "output",
        "--json",
    ]
    assert pulumi_argv(["--version"], CONFIG) == ["pulumi", "--version"]


def test_a_project_with_a_config_file_passes_it_to_up_and_config_only() -> None:
    project = PulumiProject(cwd=Path("/p"), stack="local", env={}, config_file=CONFIG)
    up = project.argv("up", "--yes")
    assert up[up.index("--config-file") + 1] == str(CONFIG)
    assert "--config-file" in project.argv("config", "set", "k", "--", "v")
    assert project.argv("config", "set", "k", "--", "v")[-2:] == ["--", "v"]
    assert "--config-file" not in project.argv("stack", "output", "--json")


def test_a_project_without_a_config_file_uses_the_engines_default() -> None:
    project = PulumiProject(cwd=Path("/p"), stack="e2e", env={})
    assert "--config-file" not in project.argv("up", "--yes")


FAKE_PULUMI = """#!/bin/sh
echo "progress: $*"
while [ ! -e "$RELEASE" ]; do sleep 0.05; done
echo "done"
exit 3
"""


def test_stream_shows_pulumis_output_while_it_runs_and_raises_on_failure(tmp_path: Path) -> None:
    # A stand-in `pulumi` that prints, then blocks until released: its first line must reach
    # our reader while it still runs (what local-up relies on to show a long `up`'s progress).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    release = tmp_path / "release"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RELEASE": str(release),
    }
    code = (
        "from pathlib import Path\n"
        "from scripts.engine import PulumiError, PulumiProject\n"
        "import os\n"
        "try:\n"
        "    PulumiProject(cwd=Path('.'), stack='local', env=dict(os.environ)).stream('up', '--yes')\n"
        "except PulumiError as exc:\n"
        "    print('raised:', exc)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
    ) as child:
        # Unblocks a runner that would print only at the end, so that case fails, not hangs.
        fallback = threading.Timer(10, release.touch)
        fallback.start()
        try:
            assert child.stdout is not None
            first = child.stdout.readline()
            assert first.startswith("progress: up --yes --stack local"), first
            assert not release.exists(), "the first line arrived only once pulumi had finished"
            release.touch()
            rest = child.stdout.read()
        finally:
            fallback.cancel()
            release.touch()
    assert "done" in rest
    assert "raised: pulumi up --yes exited 3" in rest
