"""The project installs as a package, and a user's own Pulumi program builds the component."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.engine import REPO_ROOT, PulumiProject, offline_env

pytestmark = pytest.mark.engine

USER_PROGRAM = '''
"""A user's program: the stack from its own config, the agent prompt from an Output."""
import pulumi

from infra.components import CmaBlaxelStack, CmaBlaxelStackArgs
from infra.config import read_stack_config

config = read_stack_config()
args = CmaBlaxelStackArgs.from_config(config)
stack = CmaBlaxelStack("team", args)
pulumi.export("orchestrator_sandbox", stack.outputs["orchestrator_sandbox"])
'''


def test_pip_install_into_a_fresh_venv_and_a_user_program_previews(tmp_path: Path) -> None:
    # A fresh venv whose only view of the dependencies is ours (no network here): a .pth
    # to our site-packages, which holds no copy of the project.
    fresh = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    [fresh_site] = list(fresh.glob("lib/python*/site-packages"))
    ours = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    (fresh_site / "deps.pth").write_text(ours + "\n")
    source = tmp_path / "source"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".state", "__pycache__", "build", "*.egg-info"
        ),
    )
    install = [str(fresh / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [*install, "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        check=True,
        cwd=tmp_path,
    )
    shutil.rmtree(source)  # the install must not depend on the source tree
    found = subprocess.run(
        [
            str(fresh / "bin" / "python"),
            "-c",
            "import infra, worker, orchestrator_app, sys;"
            "print(infra.__file__); import importlib.util as u; print(u.find_spec('emulator'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert found[0].startswith(str(fresh_site)) and found[1] == "None"

    program = tmp_path / "my-team-infra"
    program.mkdir()
    (program / "__main__.py").write_text(USER_PROGRAM)
    (program / "Pulumi.yaml").write_text(
        f"name: my-team-infra\nruntime:\n  name: python\n  options:\n    virtualenv: {fresh}\n"
    )
    env = offline_env(tmp_path / "home", tmp_path / "backend", "test-only-passphrase")
    env["PATH"] = f"{fresh / 'bin'}:{env['PATH']}"
    env.pop("PULUMI_RUNTIME_VIRTUALENV", None)
    project = PulumiProject(cwd=program, stack="dev", env=env)
    project.select_or_create()
    project.set_config("cma:anthropicApiKey", "sk-ant-api03-user", secret=True)
    project.set_config("blaxel:apiKey", "bl-user", secret=True)
    project.set_config("blaxel:workspace", "acme")
    changes = project.preview_changes()
    assert changes.get("create", 0) >= 8, changes
    shown = project.run("preview", "--diff").stdout
    assert "my-team-infra-dev-orch" in shown  # names scoped to the user's project and stack


def test_plain_pulumi_preview_works_after_setup_venv(tmp_path: Path) -> None:
    """No PATH tricks: `.venv/bin/pulumi` (written by scripts/setup-venv) from the project
    root, with neither the venv on PATH nor PULUMI_RUNTIME_VIRTUALENV set."""
    from tests.e2e.conftest import copy_project

    wrapper = Path(sys.executable).parent / "pulumi"
    assert wrapper.exists(), "scripts/setup-venv writes .venv/bin/pulumi"
    checkout = copy_project(tmp_path / "checkout")
    env = offline_env(tmp_path / "home", tmp_path / "backend", "test-only-passphrase")
    env["PATH"] = "/usr/bin:/bin"
    env.pop("PULUMI_RUNTIME_VIRTUALENV", None)
    done = subprocess.run(
        [str(wrapper), "stack", "init", "plain", "--non-interactive"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for key, value in {"cma:anthropicApiKey": "sk-ant-api03-x", "blaxel:apiKey": "bl-x"}.items():
        subprocess.run(
            [str(wrapper), "config", "set", "--secret", key, value, "-s", "plain"],
            cwd=checkout,
            env=env,
            check=True,
            capture_output=True,
        )
    subprocess.run(
        [str(wrapper), "config", "set", "blaxel:workspace", "w", "-s", "plain"],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
    )
    preview = subprocess.run(
        [str(wrapper), "preview", "--json", "-s", "plain", "--non-interactive"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert preview.returncode == 0, preview.stdout[-2000:] + preview.stderr[-2000:]
    assert '"create"' in preview.stdout


def test_the_venvs_pulumi_wrapper_finds_its_checkout_from_its_own_path(tmp_path: Path) -> None:
    """A checkout that links this venv (test_local_up's fresh clone) and runs setup-venv
    rewrites the wrapper: it must stay this checkout's, and survive the checkout moving."""
    wrapper = REPO_ROOT / ".venv" / "bin" / "pulumi"
    assert str(REPO_ROOT) not in wrapper.read_text()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".venv").symlink_to(REPO_ROOT / ".venv")
    (linked / "scripts").mkdir()
    (linked / "scripts" / "install-pulumi").write_text("#!/bin/sh\necho /linked-engine\n")
    (linked / "scripts" / "install-pulumi").chmod(0o755)
    # Run through the link, the wrapper asks the linked checkout's scripts for the engine.
    done = subprocess.run(
        [str(linked / ".venv" / "bin" / "pulumi"), "version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "/linked-engine/pulumi" in done.stderr, done.stderr
