# mypy: disable-error-code="index,arg-type"
# (pulumi types CreateResult.outs as Optional; these providers always return outputs)
"""Provider CRUD against the local emulator, through the official SDKs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from infra.clients import anthropic as api
from infra.clients import blaxel as bl
from infra.clients.errors import Invalid
from infra.components.credentials import AnthropicAccess, BlaxelAccess
from infra.components.orchestrator import OrchestratorArgs, server_secrets, server_settings
from infra.images import image_digest, load_image
from infra.providers.agent import AgentProvider
from infra.providers.base import anthropic_credentials, blaxel_credentials
from infra.providers.environment import EnvironmentProvider
from infra.providers.image import ImageProvider
from infra.providers.sandbox import SandboxProvider
from infra.providers.server import ServerProvider
from infra.providers.webhook import WebhookProvider

ORCHESTRATOR_FACTORY = "orchestrator_app.image:orchestrator_image"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator for the module; tests use unique names instead of resets."""
    with EmulatorServer(timing=fast_timing()) as server:
        yield server


@pytest.fixture
def anthropic_props(emulator: EmulatorServer) -> dict[str, Any]:
    c = emulator.config
    return {"anthropic_base_url": c.anthropic_base_url, "anthropic_api_key": c.anthropic_api_key}


@pytest.fixture
def blaxel_props(emulator: EmulatorServer) -> dict[str, Any]:
    c = emulator.config
    return {
        "blaxel_base_url": c.blaxel_base_url,
        "blaxel_workspace": c.blaxel_workspace,
        "blaxel_api_key": c.blaxel_api_key,
    }


@pytest.fixture(scope="module")
def orchestrator_image_ref(emulator: EmulatorServer) -> str:
    """The orchestrator image, pushed once for the module."""
    c = emulator.config
    props = {
        "blaxel_base_url": c.blaxel_base_url,
        "blaxel_workspace": c.blaxel_workspace,
        "blaxel_api_key": c.blaxel_api_key,
        "image_name": "orch-image",
        "factory": ORCHESTRATOR_FACTORY,
        "context_dir": "orchestrator_app",
        "digest": image_digest(load_image(ORCHESTRATOR_FACTORY, "")),
        "memory_mb": 2048,
    }
    return str(ImageProvider().create(props).outs["image"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inject(emulator: EmulatorServer, method: str, path: str, status: int, times: int = 1) -> None:
    rule = {"method": method, "path_pattern": path, "status": status, "times": times}
    httpx.post(emulator.config.public_base_url + "/_emulator/faults", json=rule).raise_for_status()


def environments_named(props: dict[str, Any], name: str) -> int:
    creds = anthropic_credentials(props)
    sdk = api._sdk(creds)
    return sum(
        1 for e in sdk.beta.environments.list(limit=100) if e.name == name and not e.archived_at
    )


# Environments


def test_environment_create_adopts_one_left_by_an_earlier_run(
    anthropic_props: dict[str, Any],
) -> None:
    props = {**anthropic_props, "name": unique("env"), "metadata": {}}
    first = EnvironmentProvider().create(props)
    second = EnvironmentProvider().create(props)
    assert second.id == first.id
    assert environments_named(anthropic_props, props["name"]) == 1


def test_environment_create_survives_a_transient_failure(
    emulator: EmulatorServer, anthropic_props: dict[str, Any]
) -> None:
    props = {**anthropic_props, "name": unique("env"), "metadata": {}}
    inject(emulator, "POST", r"^/v1/environments$", 503)
    result = EnvironmentProvider().create(props)
    assert result.id.startswith("env_")
    assert environments_named(anthropic_props, props["name"]) == 1


def test_environment_update_renames_in_place(anthropic_props: dict[str, Any]) -> None:
    props = {**anthropic_props, "name": unique("env"), "metadata": {}}
    created = EnvironmentProvider().create(props)
    renamed = {**props, "name": unique("env")}
    updated = EnvironmentProvider().update(created.id, created.outs, renamed)
    assert updated.outs["environment_id"] == created.id
    assert updated.outs["name"] == renamed["name"]


def test_environment_refresh_sees_deletion_and_delete_twice_succeeds(
    anthropic_props: dict[str, Any],
) -> None:
    created = EnvironmentProvider().create(
        {**anthropic_props, "name": unique("env"), "metadata": {}}
    )
    assert EnvironmentProvider().read(created.id, created.outs).id == created.id
    EnvironmentProvider().delete(created.id, created.outs)
    EnvironmentProvider().delete(created.id, created.outs)
    assert EnvironmentProvider().read(created.id, created.outs).id == ""


# Agents


def test_agent_update_makes_a_new_version(anthropic_props: dict[str, Any]) -> None:
    props = {**anthropic_props, "name": unique("agent")}
    created = AgentProvider().create(props)
    updated = AgentProvider().update(created.id, created.outs, {**props, "system": "be brief"})
    assert updated.outs["version"] == created.outs["version"] + 1
    assert updated.outs["agent_id"] == created.id


def test_agent_delete_archives_it_and_refresh_sees_it_gone(anthropic_props: dict[str, Any]) -> None:
    created = AgentProvider().create({**anthropic_props, "name": unique("agent")})
    AgentProvider().delete(created.id, created.outs)
    AgentProvider().delete(created.id, created.outs)
    assert AgentProvider().read(created.id, created.outs).id == ""


# Images


def test_image_update_with_the_same_digest_pushes_nothing(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], tmp_path: Any
) -> None:
    (tmp_path / "app.py").write_text("print('hi')\n")
    factory = "infra.images:default_image"
    props = {
        **blaxel_props,
        "image_name": unique("img"),
        "factory": factory,
        "context_dir": str(tmp_path),
        "digest": image_digest(load_image(factory, str(tmp_path))),
        "memory_mb": 1024,
    }
    created = ImageProvider().create(props)
    assert created.outs["image"].startswith(f"local/sandbox/{props['image_name']}:")
    pushes = len(emulator.emulator.blaxel.image_pushes)
    updated = ImageProvider().update(created.id, created.outs, {**props, "memory_mb": 2048})
    assert len(emulator.emulator.blaxel.image_pushes) == pushes
    assert updated.outs["image"] == created.outs["image"]
    ImageProvider().delete(created.id, created.outs)
    assert ImageProvider().read(created.id, created.outs).id == ""


# The orchestrator sandbox


def sandbox_props(blaxel_props: dict[str, Any], image: str) -> dict[str, Any]:
    return {
        **blaxel_props,
        "sandbox_name": unique("orch"),
        "image": image,
        "image_digest": "sha256:1",
    }


def test_sandbox_update_keeps_its_preview_url(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = SandboxProvider().create(props)
    updated = SandboxProvider().update(
        created.id, created.outs, {**props, "memory_mb": 2048, "image_digest": "sha256:2"}
    )
    assert updated.outs["url"] == created.outs["url"]
    assert created.outs["url"].startswith("http://127.0.0.1")


def test_sandbox_from_an_unknown_image_fails_naming_the_image(
    blaxel_props: dict[str, Any], emulator: EmulatorServer
) -> None:
    """docs/platform-contract.md B3: Blaxel refuses an image nobody pushed (IMAGE_NOT_FOUND)."""
    props = sandbox_props(blaxel_props, "local/sandbox/never-pushed:abc")

    with pytest.raises(Invalid, match="IMAGE_NOT_FOUND") as caught:
        SandboxProvider().create(props)

    assert "never-pushed:abc" in str(caught.value)
    assert props["sandbox_name"] not in emulator.emulator.blaxel.live_resources()["sandboxes"]


def test_sandbox_create_adopts_a_leftover_sandbox(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    first = SandboxProvider().create(props)
    second = SandboxProvider().create(props)
    assert second.outs["url"] == first.outs["url"]
    previews = bl.list_previews(blaxel_credentials(props), props["sandbox_name"])
    assert len(previews) == 1


def test_sandbox_refresh_sees_out_of_band_deletion(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = SandboxProvider().create(props)
    bl.delete_sandbox_by_name(blaxel_credentials(props), props["sandbox_name"])
    assert SandboxProvider().read(created.id, created.outs).id == ""


def test_sandbox_delete_takes_the_preview_down(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = SandboxProvider().create(props)
    SandboxProvider().delete(created.id, created.outs)
    SandboxProvider().delete(created.id, created.outs)
    assert httpx.get(created.outs["url"] + "/health").status_code == 404


# Webhook endpoints


@pytest.mark.xfail(
    strict=True,
    reason="the organization webhooks API carries no session events (DESIGN §2/§3, the strict"
    " emulator refuses them): `api` mode must be refused at preview (infra room, issue 12)",
)
def test_api_webhook_adopts_by_url_with_a_fresh_secret(anthropic_props: dict[str, Any]) -> None:
    props = {**anthropic_props, "mode": "api", "url": f"https://{unique('h')}.test/webhook"}
    first = WebhookProvider().create(props)
    second = WebhookProvider().create(props)
    assert second.id == first.id
    assert first.outs["signing_secret"].startswith("whsec_")
    assert second.outs["signing_secret"] != first.outs["signing_secret"]
    WebhookProvider().delete(first.id, first.outs)
    WebhookProvider().delete(first.id, first.outs)
    assert WebhookProvider().read(first.id, first.outs).id == ""


def test_console_webhook_needs_no_credentials_and_passes_the_secret_on() -> None:
    props = {"mode": "console", "url": "https://x.test/webhook", "signing_secret": "whsec_abc"}
    created = WebhookProvider().create(props)
    assert created.outs["signing_secret"] == "whsec_abc"
    assert created.outs["url"] == "https://x.test/webhook"
    WebhookProvider().delete(created.id, created.outs)


# The orchestrator server


def test_server_restarts_in_place_when_secrets_arrive(
    emulator: EmulatorServer,
    anthropic_props: dict[str, Any],
    blaxel_props: dict[str, Any],
    orchestrator_image_ref: str,
) -> None:
    c = emulator.config
    env = EnvironmentProvider().create({**anthropic_props, "name": unique("env"), "metadata": {}})
    sandbox = SandboxProvider().create(sandbox_props(blaxel_props, orchestrator_image_ref))
    url = sandbox.outs["url"]
    args = OrchestratorArgs(
        blaxel=BlaxelAccess(c.blaxel_base_url, c.blaxel_workspace, ""),
        anthropic=AnthropicAccess(c.anthropic_base_url, ""),
        sandbox_name=sandbox.id,
        image="",
        image_digest="",
        environment_id="",
        worker_image="",
        environment_key="",
    )
    props = {
        **blaxel_props,
        "sandbox_name": sandbox.id,
        "url": url,
        "settings": server_settings(args, env.id, "local/sandbox/worker:1"),
        "secrets": server_secrets("", "", c.blaxel_api_key),
    }
    started = ServerProvider().create(props)
    assert httpx.get(url + "/health").status_code == 200
    assert httpx.get(url + "/ready").json()["status"] == "not_ready"

    key = httpx.post(f"{c.console_url}/environments/{env.id}/keys").json()["key"]
    hook = httpx.post(
        f"{c.console_url}/webhooks",
        json={"url": url + "/webhook", "events": ["session.status_run_started"]},
    ).json()
    news = {**props, "secrets": server_secrets(key, hook["secret"], c.blaxel_api_key)}
    restarted = ServerProvider().update(started.id, started.outs, news)
    assert restarted.outs["revision"] == started.outs["revision"] + 1
    assert httpx.get(url + "/ready").json()["status"] == "ready"
    assert SandboxProvider().read(sandbox.id, sandbox.outs).outs["url"] == url

    ServerProvider().delete(started.id, restarted.outs)
    assert ServerProvider().read(started.id, restarted.outs).id == ""


def test_environment_create_takes_over_the_one_named_by_adopt_id(
    anthropic_props: dict[str, Any],
) -> None:
    existing = EnvironmentProvider().create(
        {**anthropic_props, "name": unique("env"), "metadata": {}}
    )
    wanted = {**anthropic_props, "name": unique("env"), "metadata": {}, "adopt_id": existing.id}
    adopted = EnvironmentProvider().create(wanted)
    assert adopted.id == existing.id
    assert adopted.outs["name"] == wanted["name"]


def test_agent_create_takes_over_the_one_named_by_adopt_id(anthropic_props: dict[str, Any]) -> None:
    existing = AgentProvider().create({**anthropic_props, "name": unique("agent")})
    adopted = AgentProvider().create(
        {**anthropic_props, "name": unique("agent"), "adopt_id": existing.id}
    )
    assert adopted.id == existing.id
    assert adopted.outs["version"] == existing.outs["version"] + 1


def test_sandbox_update_moves_the_preview_to_a_new_port(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = SandboxProvider().create(props)
    SandboxProvider().update(created.id, created.outs, {**props, "port": 9090})
    [preview] = bl.list_previews(blaxel_credentials(props), props["sandbox_name"])
    assert preview["spec"]["port"] == 9090


def test_sandbox_update_without_preview_name_keeps_the_default_preview(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = SandboxProvider().create(props)
    SandboxProvider().update(created.id, created.outs, {**props, "memory_mb": 1024})
    [preview] = bl.list_previews(blaxel_credentials(props), props["sandbox_name"])
    assert preview["metadata"]["name"] == "public"
