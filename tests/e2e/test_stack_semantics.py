"""Pulumi semantics a team relies on, through the real engine against the emulator: stacks
that own disjoint objects, state that works from any checkout, credentials outside the state,
replacement that leaves one live object, and an upgrade from the previous version's state."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.engine import REPO_ROOT, PulumiProject
from scripts.local_stack import do_console_steps
from tests.e2e.conftest import STACK, EndToEnd, another_stack, copy_project

pytestmark = pytest.mark.engine

PREVIOUS_RELEASE = "7b41322"  # the last commit before typed, credential-free resources


def state_resources(project: PulumiProject) -> list[dict[str, Any]]:
    exported = json.loads(project.run("stack", "export").stdout)
    return [
        r
        for r in exported["deployment"].get("resources") or []
        if r["type"].startswith("pulumi-python:")
    ]


def by_type(project: PulumiProject) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for r in state_resources(project):
        found.setdefault(r["type"].rsplit(":", 1)[-1], []).append(r["id"])
    return found


def wire(stack: EndToEnd) -> dict[str, Any]:
    """`up`, the Console steps, `up`: a serving stack."""
    stack.project.up()
    do_console_steps(
        stack.project, stack.emulator_info, stack.project.outputs(), stack.work_dir / "c.json"
    )
    stack.project.up()
    return stack.project.outputs()


def test_two_stacks_own_disjoint_objects_and_a_third_cannot_take_one(e2e: EndToEnd) -> None:
    prod = another_stack(e2e, "prod")
    e2e.project.up()
    first = e2e.project.outputs()
    second = wire(prod)

    assert first["environment_id"] != second["environment_id"]
    assert first["agent_id"] != second["agent_id"]
    assert first["orchestrator_sandbox"] != second["orchestrator_sandbox"]
    assert first["orchestrator_url"] != second["orchestrator_url"]
    assert second["agent_version"] == 1  # nobody else versioned it

    e2e.project.run("destroy", "--yes")
    anthropic = e2e.server.emulator.anthropic
    assert anthropic.environments[second["environment_id"]].archived_at is None
    assert anthropic.agents[second["agent_id"]].archived_at is None
    assert httpx.get(second["orchestrator_url"] + "/ready", timeout=10).status_code == 200

    # A third stack pointed at the second one's sandbox is refused; nothing changes.
    starts = len(e2e.server.emulator.blaxel.process_starts)
    third = another_stack(
        e2e, "third", **{"blaxel:orchestratorSandboxName": second["orchestrator_sandbox"]}
    )
    refused = third.project.run("up", "--yes", "--skip-preview", check=False)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert f"sandbox '{second['orchestrator_sandbox']}' already exists" in message
    assert "belongs to stack cma-blaxel/prod" in message
    assert "blaxel:orchestratorSandboxName" in message
    labels = e2e.server.emulator.blaxel.sandboxes[second["orchestrator_sandbox"]].metadata
    assert labels["labels"]["cma-stack"] == "prod"
    assert len(e2e.server.emulator.blaxel.process_starts) == starts
    assert prod.project.outputs() == second
    assert httpx.get(second["orchestrator_url"] + "/ready", timeout=10).status_code == 200

    # Pointed at the second one's worker image instead: refused, nothing pushed over it.
    blaxel = e2e.server.emulator.blaxel
    worker_image = second["worker_image"].rsplit("/", 1)[-1].split(":")[0]
    pushes = [p for p in blaxel.image_pushes if p.sandbox == worker_image]
    third.project.run("config", "rm", "blaxel:orchestratorSandboxName")
    third.project.set_config("blaxel:workerImageName", worker_image)
    refused = third.project.run("up", "--yes", "--skip-preview", check=False)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert f"image '{worker_image}' already exists" in message
    assert "belongs to stack cma-blaxel/prod" in message and "blaxel:workerImageName" in message
    assert [p for p in blaxel.image_pushes if p.sandbox == worker_image] == pushes
    third.project.run("destroy", "--yes")
    assert blaxel.images.tags(worker_image)  # the third's destroy left it alone
    prod.project.run("destroy", "--yes")


def test_state_from_one_checkout_works_from_another_with_rotated_and_revoked_keys(
    e2e: EndToEnd, tmp_path: Path
) -> None:
    e2e.project.up()
    first = e2e.project.outputs()
    checkout_a = e2e.project.cwd
    checkout_b = tmp_path / "checkout-b"
    shutil.copytree(checkout_a, checkout_b, symlinks=True)
    shutil.rmtree(checkout_a)
    e2e.project.cwd = checkout_b  # the fixture's final destroy runs from B too

    assert set(e2e.project.preview_changes()) == {"same"}
    # No path in any resource's inputs or outputs (the engine's own source positions aside).
    held = json.dumps([(r.get("inputs"), r.get("outputs")) for r in state_resources(e2e.project)])
    assert str(checkout_a) not in held and str(REPO_ROOT) not in held

    # Rotate both keys on the platforms (the old ones stop working), then in config.
    config = e2e.server.config
    object.__setattr__(config, "anthropic_api_key", "sk-ant-api03-rotated")
    e2e.project.set_config("cma:anthropicApiKey", "sk-ant-api03-rotated", secret=True)
    # Without running the program the engine configures providers from the config saved at
    # the last `up` (the revoked key); --run-program configures them from the current one.
    e2e.project.run("refresh", "--yes", "--run-program")
    assert set(e2e.project.preview_changes()) == {"same"}, "the Anthropic key is in no resource"
    e2e.project.up()
    assert e2e.project.outputs()["orchestrator_revision"] == first["orchestrator_revision"]
    e2e.project.run("refresh", "--yes")  # the saved config holds the new key now

    object.__setattr__(config, "blaxel_api_key", "bl-rotated")
    e2e.project.set_config("blaxel:apiKey", "bl-rotated", secret=True)
    # Only the server, which calls Blaxel itself, gets the new key: one in-place restart.
    changes = e2e.project.preview_changes()
    assert changes.get("update") == 1 and set(changes) == {"same", "update"}, changes
    e2e.project.up()
    assert e2e.project.outputs()["orchestrator_revision"] == first["orchestrator_revision"] + 1

    e2e.project.run("destroy", "--yes")
    assert not any(e2e.server.emulator.blaxel.live_resources().values())
    assert e2e.server.emulator.anthropic.live_resources()["agents"] == []


def test_replacing_every_resource_leaves_exactly_one_live_object_each(e2e: EndToEnd) -> None:
    e2e.project.up()
    urns = [r["urn"] for r in state_resources(e2e.project)]
    replace = [arg for urn in urns for arg in ("--replace", urn)]
    e2e.project.up(*replace)

    emulator = e2e.server.emulator
    kinds = by_type(e2e.project)
    live_agents = emulator.anthropic.live_resources()["agents"]
    live_envs = [i for i, env in emulator.anthropic.environments.items() if env.archived_at is None]
    assert live_agents == kinds["Agent"]
    assert live_envs == kinds["Environment"]
    sandboxes = emulator.blaxel.live_resources()["sandboxes"]
    assert kinds["OrchestratorSandbox"][0] in sandboxes
    for image in kinds["SandboxImage"]:
        assert image in sandboxes  # each image's build sandbox, once
    # The orchestrator and the two image build sandboxes: nothing else, nothing twice.
    assert len(sandboxes) == 3
    outputs = e2e.project.outputs()
    assert httpx.get(outputs["orchestrator_url"] + "/health", timeout=10).status_code == 200
    assert set(e2e.project.preview_changes()) == {"same"}


def test_a_stack_of_the_previous_version_upgrades_without_replacing_anything(
    e2e: EndToEnd, tmp_path: Path
) -> None:
    # The previous version's program (infra/ and Pulumi files) with today's images, so only
    # the infrastructure code differs.
    old = tmp_path / "previous"
    old.mkdir()
    archive = subprocess.run(
        ["git", "archive", PREVIOUS_RELEASE, "infra", "Pulumi.yaml", "Pulumi.local.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    # It could not have run on Blaxel as it was (the strict emulator refuses it, as the
    # platform does): its orchestrator listened on the reserved 8080, and it read scheme-less
    # preview URLs as https. The stack being upgraded is one that ran, so with both fixed.
    fixes = {
        "port: int = 8080": "port: int = 8000",
        'url = "https://" + url': 'url = ("http://" if "127.0.0.1" in url else "https://") + url',
    }
    # Today's images are ImageRecipes (no SDK import at preview): the old program takes each as
    # the SDK ImageInstance it stands for (same Dockerfile and files, so the same digest).
    fixes["image = factory(context_dir) if required else factory()"] = (
        "image = factory(context_dir) if required else factory()\n"
        "    image = image.to_instance() if hasattr(image, 'to_instance') else image"
    )
    for module in (
        "infra/components/orchestrator.py",
        "infra/providers/sandbox.py",
        "infra/images.py",
    ):
        path = old / module
        text = path.read_text()
        for broken, fixed in fixes.items():
            text = text.replace(broken, fixed)
        path.write_text(text)
    shutil.copy(REPO_ROOT / "infra" / "image_recipe.py", old / "infra" / "image_recipe.py")
    for part in ("orchestrator_app", "worker", "requirements.txt"):
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, old / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, old / part)
    shutil.copy(e2e.project.cwd / f"Pulumi.{STACK}.yaml", old / f"Pulumi.{STACK}.yaml")
    # The names the previous version used (its local config's, and its default image names):
    # a stack upgrading keeps them in config (infra/README.md, "Upgrading").
    previous = PulumiProject(cwd=old, stack=STACK, env=e2e.project.env)
    # The stack config as the previous version knew it (its lifecycle key, not today's).
    previous.run("config", "rm", "blaxel:workerIdleTtl")
    previous.set_config("blaxel:workerIdleDeleteSeconds", "120")
    for key, value in {
        "cma:environmentName": "cma-blaxel-local",
        "cma:agentName": "cma-blaxel-local-agent",
        "blaxel:orchestratorSandboxName": "cma-orchestrator-local",
        "blaxel:orchestratorImageName": "cma-orchestrator-image",
        "blaxel:workerImageName": "cma-worker-image",
    }.items():
        previous.set_config(key, value)
    previous.up()
    do_console_steps(previous, e2e.emulator_info, previous.outputs(), tmp_path / "c.json")
    previous.up()
    before = previous.outputs()
    assert {r["type"] for r in state_resources(previous)} == {"pulumi-python:dynamic:Resource"}

    current = copy_project(tmp_path / "current")
    shutil.copy(old / f"Pulumi.{STACK}.yaml", current / f"Pulumi.{STACK}.yaml")
    upgraded = PulumiProject(cwd=current, stack=STACK, env=e2e.project.env)
    # The one config step of the upgrade (infra/README.md, "Upgrading"): the reaper's key is
    # gone; the new program names it and its replacement if it is still set.
    refused = upgraded.run("preview", check=False)
    assert "blaxel:workerIdleDeleteSeconds: removed" in refused.stdout + refused.stderr
    upgraded.run("config", "rm", "blaxel:workerIdleDeleteSeconds")
    e2e.project.cwd = current
    blaxel = e2e.server.emulator.blaxel
    pushes = len(blaxel.image_pushes)

    changes = upgraded.preview_changes()
    # Nothing replaced or deleted; the creates are the new status token and worker cleanup.
    assert not {"delete", "replace", "create-replacement"} & set(changes), changes
    assert changes.get("create") == 2, changes
    upgraded.up()
    after = upgraded.outputs()
    assert len(blaxel.image_pushes) == pushes, "the upgrade pushed an image"
    for key in ("environment_id", "agent_id", "orchestrator_sandbox", "orchestrator_url"):
        assert after[key] == before[key], key
    # The one new secret (the status token) restarts the server once, in place.
    assert after["orchestrator_revision"] == before["orchestrator_revision"] + 1
    assert httpx.get(after["orchestrator_url"] + "/ready", timeout=10).status_code == 200
    assert all(
        r["type"].startswith("pulumi-python:dynamic/cma:") for r in state_resources(upgraded)
    )
    assert "anthropic_api_key" not in json.dumps(
        [r.get("inputs") for r in state_resources(upgraded)]
    )
    assert set(upgraded.preview_changes()) == {"same"}


def test_import_takes_existing_objects_into_a_stack_and_up_then_changes_nothing(
    e2e: EndToEnd,
) -> None:
    from scripts.import_stack import import_into

    # Objects left by another stack whose state is gone (as by another tool, or a lost state).
    donor = another_stack(e2e, "donor")
    donor.project.up()
    existing = donor.project.outputs()
    donor.project.run("stack", "rm", "--force", "--yes")

    import_into(
        e2e.project,
        existing["environment_id"],
        existing["agent_id"],
        existing["orchestrator_sandbox"],
    )
    imported = e2e.project.outputs()
    for key in ("environment_id", "agent_id", "orchestrator_sandbox", "orchestrator_url"):
        assert imported[key] == existing[key], key
    assert set(e2e.project.preview_changes()) == {"same"}
    sandbox = e2e.server.emulator.blaxel.sandboxes[existing["orchestrator_sandbox"]]
    assert sandbox.metadata["labels"]["cma-stack"] == STACK
    anthropic = e2e.server.emulator.anthropic
    assert len([a for a in anthropic.live_resources()["agents"]]) == 1
