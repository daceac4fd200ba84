"""The resource graph under Pulumi's mocks: parents, dependencies, secrets, outputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks

from infra.components.stack import CmaBlaxelStack, CmaBlaxelStackArgs
from infra.config import load_stack_config

SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
ENV = {"ANTHROPIC_API_KEY": "sk-ant-api03-test", "BL_API_KEY": "bl-test", "BL_WORKSPACE": "ws"}


@dataclass
class Registration:
    """What the program asked the engine for, one resource."""

    type: str
    name: str
    parent: str
    dependencies: list[str]
    secret_outputs: list[str]
    secret_inputs: set[str]
    property_dependencies: set[str]
    protect: bool
    inputs: dict[str, Any]


class StackMocks(pulumi.runtime.Mocks):
    """Echo inputs back with plausible computed outputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outs = dict(args.inputs)
        name = args.name
        if name.endswith("-environment"):
            outs["environment_id"] = "env_mock"
        elif name.endswith("-agent"):
            outs.update(agent_id="agent_mock", version=1)
        elif name.endswith(("-worker", "-orchestrator")) and "image_name" in outs:
            outs["image"] = f"{outs['image_name']}:latest"
        elif name.endswith("-sandbox"):
            outs.update(
                url="https://orch.preview.test",
                sandbox_url="https://orch.run.test",
                spec_digest="sha256:s",
            )
        elif name.endswith("-webhook"):
            outs.update(endpoint_id="", signing_secret=outs.get("signing_secret") or "whsec_api")
        elif name.endswith("-server"):
            outs.update(revision=1, process="orchestrator-r1")
        elif name.endswith("-status-token"):
            outs.update(token="generated-token")
        return f"{name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


def _secret_fields(struct: Any) -> set[str]:
    data = json_format.MessageToDict(struct)
    return {k for k, v in data.items() if isinstance(v, dict) and v.get(SIG_KEY) == SECRET_SIG}


@pytest.fixture
def registrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Registration]]:
    """Every resource registration of one program run, by resource name."""
    seen: dict[str, Registration] = {}
    original = pulumi_mocks.MockMonitor.RegisterResource

    def record(self: Any, request: Any) -> Any:
        seen[request.name] = Registration(
            type=request.type,
            name=request.name,
            parent=request.parent,
            dependencies=list(request.dependencies),
            secret_outputs=list(request.additionalSecretOutputs),
            secret_inputs=_secret_fields(request.object),
            property_dependencies={k for k, v in request.propertyDependencies.items() if v.urns},
            protect=bool(request.protect),
            inputs=json_format.MessageToDict(request.object),
        )
        return original(self, request)

    monkeypatch.setattr(pulumi_mocks.MockMonitor, "RegisterResource", record)
    # A loop of the test's own: the mocks register the stack on the current loop, and an earlier
    # test of the worker may have left none (asyncio.run ends by setting the loop to None).
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(StackMocks(), project="cma-blaxel", stack="test", preview=False)
    yield seen


def _run(values: dict[str, str]) -> dict[str, Any]:
    """Build the stack under mocks and resolve its outputs."""
    config = load_stack_config(values, ENV)
    stack = CmaBlaxelStack("cma", CmaBlaxelStackArgs.from_config(config))
    keys = list(stack.outputs)
    resolved = pulumi.Output.all(*[stack.outputs[k] for k in keys]).apply(
        lambda vals: dict(zip(keys, vals, strict=True))
    )
    # Awaiting the Output itself (not a callback) makes an exception raised in any apply fail
    # the test instead of leaving it waiting forever.
    return asyncio.get_event_loop().run_until_complete(resolved.future())  # type: ignore[arg-type]


def test_every_resource_has_its_component_as_parent(registrations: dict[str, Registration]) -> None:
    _run({})
    assert registrations["cma"].type == "cma:stack:CmaBlaxelStack"
    assert registrations["cma-orchestrator"].type == "cma:orchestrator:Orchestrator"
    for child in (
        "cma-orchestrator-sandbox",
        "cma-orchestrator-webhook",
        "cma-orchestrator-server",
    ):
        assert registrations[child].parent.endswith("::cma-orchestrator")
    for child in ("cma-platform-environment", "cma-platform-agent"):
        assert registrations[child].parent.endswith("::cma-platform")
    for child in ("cma-images-worker", "cma-images-orchestrator"):
        assert registrations[child].parent.endswith("::cma-images")


def test_server_depends_on_the_webhook_and_the_sandbox(
    registrations: dict[str, Registration],
) -> None:
    _run({})
    deps = registrations["cma-orchestrator-server"].dependencies
    assert any(d.endswith("::cma-orchestrator-webhook") for d in deps)
    assert any(d.endswith("::cma-orchestrator-sandbox") for d in deps)
    assert "sandbox_spec_digest" in registrations["cma-orchestrator-server"].property_dependencies


def test_server_goes_before_the_worker_cleanup_which_goes_before_the_environment(
    registrations: dict[str, Registration],
) -> None:
    """Destroy deletes dependents first: the server stops, then the stack's workers go,
    while the environment they are labelled with still exists."""
    _run({})
    server = registrations["cma-orchestrator-server"]
    cleanup = registrations["cma-orchestrator-workers"]
    assert any(d.endswith("::cma-orchestrator-workers") for d in server.dependencies)
    assert "environment_id" in cleanup.property_dependencies


def test_webhook_depends_on_the_sandbox_url(registrations: dict[str, Registration]) -> None:
    _run({})
    deps = registrations["cma-orchestrator-webhook"].dependencies
    assert any(d.endswith("::cma-orchestrator-sandbox") for d in deps)


def test_sandbox_outlives_nothing_so_the_public_endpoint_goes_first(
    registrations: dict[str, Registration],
) -> None:
    _run({})
    deps = registrations["cma-orchestrator-sandbox"].dependencies
    for other in (
        "cma-platform-environment",
        "cma-platform-agent",
        "cma-images-worker",
        "cma-images-orchestrator",
    ):
        assert any(d.endswith(f"::{other}") for d in deps), other


def test_no_resource_takes_a_credential_or_base_url_input(
    registrations: dict[str, Registration], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Providers read them from the stack config at call time; only the server gets the
    Blaxel key and the URLs, as its own settings (secret)."""
    seen_inputs: dict[str, set[str]] = {}
    original = StackMocks.new_resource

    def record(self: Any, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        seen_inputs[args.name] = set(args.inputs)
        return original(self, args)

    monkeypatch.setattr(StackMocks, "new_resource", record)
    _run({})
    forbidden = {
        "anthropic_api_key",
        "anthropic_base_url",
        "blaxel_api_key",
        "blaxel_base_url",
        "blaxel_workspace",
    }
    assert seen_inputs
    for name, inputs in seen_inputs.items():
        assert not inputs & forbidden, name


def test_each_kind_has_its_own_type_aliased_to_the_old_one(
    registrations: dict[str, Registration],
) -> None:
    _run({})
    assert registrations["cma-platform-agent"].type == "pulumi-python:dynamic/cma:Agent"
    assert registrations["cma-orchestrator-sandbox"].type == (
        "pulumi-python:dynamic/cma:OrchestratorSandbox"
    )
    dynamic = [r for r in registrations.values() if r.type.startswith("pulumi-python:")]
    # Eight kinds; the two images share one.
    assert len({r.type for r in dynamic}) == 8 and len(dynamic) == 9


def test_default_names_are_scoped_to_project_and_stack(
    registrations: dict[str, Registration], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    original = StackMocks.new_resource

    def record(self: Any, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        seen[args.name] = dict(args.inputs)
        return original(self, args)

    monkeypatch.setattr(StackMocks, "new_resource", record)
    _run({})
    assert seen["cma-orchestrator-sandbox"]["sandbox_name"] == "cma-blaxel-test-orch"
    assert seen["cma-platform-environment"]["name"] == "cma-blaxel-test-env"
    assert seen["cma-platform-agent"]["name"] == "cma-blaxel-test-agent"
    assert seen["cma-images-worker"]["image_name"] == "cma-blaxel-test-worker-img"
    owner = {"project": "cma-blaxel", "stack": "test"}
    assert seen["cma-orchestrator-sandbox"]["owner"] == owner
    assert seen["cma-platform-agent"]["owner"] == owner
    assert seen["cma-images-worker"]["owner"] == seen["cma-images-orchestrator"]["owner"] == owner
    assert seen["cma-images-worker"]["name_key"] == "blaxel:workerImageName"
    # Contexts are relative to the package: the same state from any checkout.
    assert seen["cma-images-worker"]["context_dir"] == "worker"


def test_server_secrets_and_signing_secret_are_secret(
    registrations: dict[str, Registration],
) -> None:
    _run({"cma:webhookSigningSecret": "whsec_abc", "cma:environmentKey": "sk-ant-oat01-k"})
    server = registrations["cma-orchestrator-server"]
    assert "secrets" in server.secret_inputs and "secrets" in server.secret_outputs
    assert "settings" not in server.secret_inputs
    webhook = registrations["cma-orchestrator-webhook"]
    assert "signing_secret" in webhook.secret_inputs and "signing_secret" in webhook.secret_outputs


def test_outputs_name_everything_and_list_next_steps(
    registrations: dict[str, Registration],
) -> None:
    outputs = _run({})
    assert outputs["environment_id"] == "env_mock"
    assert outputs["agent_id"] == "agent_mock"
    assert outputs["webhook_url"] == "https://orch.preview.test/webhook"
    assert outputs["orchestrator_url"] == "https://orch.preview.test"
    assert outputs["worker_image"] == "cma-blaxel-test-worker-img:latest"
    assert len(outputs["next_steps"]) == 2
    assert "env_mock" in outputs["next_steps"][0]


def test_workers_are_made_from_the_worker_images_latest_version_not_the_pushed_ref(
    registrations: dict[str, Registration],
) -> None:
    # Issue 14: a new worker image (a tool edit) must not change the orchestrator's settings,
    # so the server is given the name's `:latest` ref, known before any push.
    outputs = _run({})
    settings = registrations["cma-orchestrator-server"].inputs["settings"]
    assert settings["ORCH_WORKER_IMAGE"] == "sandbox/cma-blaxel-test-worker-img:latest"
    assert outputs["worker_image"] != settings["ORCH_WORKER_IMAGE"]  # the pushed version


def test_a_prebuilt_worker_image_reaches_the_orchestrator_as_it_is(
    registrations: dict[str, Registration],
) -> None:
    _run({"cma:workerImage": json.dumps({"image": "registry.example.com/w:1"})})
    settings = registrations["cma-orchestrator-server"].inputs["settings"]
    assert settings["ORCH_WORKER_IMAGE"] == "registry.example.com/w:1"


def test_poll_mode_has_no_webhook_nor_public_preview_and_asks_only_for_the_environment_key(
    registrations: dict[str, Registration],
) -> None:
    outputs = _run({"cma:dispatchMode": "poll", "cma:webhookSigningSecret": "whsec_unused"})
    assert "cma-orchestrator-webhook" not in registrations
    assert registrations["cma-orchestrator-sandbox"].inputs["preview_name"] == ""
    server = registrations["cma-orchestrator-server"]
    assert server.inputs["settings"]["ORCH_DISPATCH_MODE"] == "poll"
    # `up` reaches the server through the sandbox API, on the sandbox's port.
    assert server.inputs["private_port"] == 8000
    assert not any(d.endswith("::cma-orchestrator-webhook") for d in server.dependencies)
    assert outputs["webhook_url"] == ""
    [step] = outputs["next_steps"]
    assert "cma:environmentKey" in step and "webhook" not in step.lower()


def test_webhook_mode_leaves_the_dispatch_mode_to_the_servers_default(
    registrations: dict[str, Registration],
) -> None:
    # Older stacks' server settings stay as they were: an upgrade restarts nothing.
    _run({})
    server = registrations["cma-orchestrator-server"]
    assert "ORCH_DISPATCH_MODE" not in server.inputs["settings"]
    assert "private_port" not in server.inputs
    assert registrations["cma-orchestrator-sandbox"].inputs["preview_name"] == "public"


def test_next_steps_is_empty_with_all_secrets_set(registrations: dict[str, Registration]) -> None:
    outputs = _run(
        {"cma:webhookSigningSecret": "whsec_abc", "cma:environmentKey": "sk-ant-oat01-k"}
    )
    assert outputs["next_steps"] == []


def test_protect_config_protects_the_environment_and_agent_only(
    registrations: dict[str, Registration],
) -> None:
    _run({"cma:protect": "true"})
    protected = {name for name, r in registrations.items() if r.protect}
    assert protected == {"cma-platform-environment", "cma-platform-agent"}


def test_without_protect_config_nothing_is_protected(
    registrations: dict[str, Registration],
) -> None:
    _run({})
    assert not any(r.protect for r in registrations.values())
