"""The local-stack script's command lines: the stack's config file reaches every command that reads config."""

from __future__ import annotations

from pathlib import Path

from scripts.engine import PulumiProject
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
