# mypy: disable-error-code="index,arg-type,operator,dict-item"
# (pulumi types CreateResult.outs as Optional; these providers always return outputs)
"""Provider CRUD against the local emulator, through the official SDKs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import pytest
from pulumi.dynamic import Config, ConfigureRequest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from infra.clients import anthropic as api
from infra.clients import blaxel as bl
from infra.clients.errors import Invalid, Transient
from infra.components.orchestrator import OrchestratorArgs, server_secrets, server_settings
from infra.images import image_digest, load_image
from infra.names import NotOurs, Owner
from infra.providers.agent import AgentProvider
from infra.providers.base import CmaProvider
from infra.providers.environment import EnvironmentProvider
from infra.providers.image import ImageProvider
from infra.providers.sandbox import SandboxProvider
from infra.providers.server import ServerProvider
from infra.providers.webhook import WebhookProvider
from infra.status import orchestrator_section

ORCHESTRATOR_FACTORY = "orchestrator_app.image:orchestrator_image"
# The stack config the engine would hand every provider's configure() (set per module).
STACK_CONFIG: dict[str, str] = {}
P = TypeVar("P", bound=CmaProvider)


def configured(cls: type[P], config: dict[str, str] | None = None) -> P:
    """A provider as the provider host makes it: configured with the stack config."""
    provider = cls()
    provider.configure(ConfigureRequest(Config(config or STACK_CONFIG, "cma-blaxel")))
    return provider


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator for the module; tests use unique names instead of resets."""
    with EmulatorServer(timing=fast_timing()) as server:
        c = server.config
        STACK_CONFIG.clear()
        STACK_CONFIG.update(
            {
                "cma:anthropicBaseUrl": c.anthropic_base_url,
                "cma:anthropicApiKey": c.anthropic_api_key,
                "blaxel:baseUrl": c.blaxel_base_url,
                "blaxel:workspace": c.blaxel_workspace,
                "blaxel:apiKey": c.blaxel_api_key,
            }
        )
        yield server


OWNER = {"project": "cma-blaxel", "stack": "test"}
PROD_OWNER = {"project": "cma-blaxel", "stack": "prod"}


@pytest.fixture
def anthropic_props(emulator: EmulatorServer) -> dict[str, Any]:
    """Inputs every Anthropic-side resource of this stack carries: its owner, no credentials."""
    return {"owner": OWNER}


@pytest.fixture
def blaxel_props(emulator: EmulatorServer) -> dict[str, Any]:
    return {"owner": OWNER}


@pytest.fixture(scope="module")
def orchestrator_image_ref(emulator: EmulatorServer) -> str:
    """The orchestrator image, pushed once for the module."""
    props = {
        "image_name": "orch-image",
        "factory": ORCHESTRATOR_FACTORY,
        "context_dir": "orchestrator_app",
        "digest": image_digest(load_image(ORCHESTRATOR_FACTORY, "")),
        "memory_mb": 2048,
    }
    return str(configured(ImageProvider).create(props).outs["image"])


def emulator_args(emulator: EmulatorServer, dispatch_mode: str = "webhook") -> OrchestratorArgs:
    """The orchestrator's arguments that matter to its settings: the emulator's URLs."""
    c = emulator.config
    return OrchestratorArgs(
        anthropic_base_url=c.anthropic_base_url,
        blaxel_base_url=c.blaxel_base_url,
        blaxel_workspace=c.blaxel_workspace,
        blaxel_api_key="",
        sandbox_name="",
        owner=Owner("cma-blaxel", "test"),
        image="",
        image_digest="",
        environment_id="",
        worker_image="",
        environment_key="",
        dispatch_mode=dispatch_mode,  # type: ignore[arg-type]
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inject(emulator: EmulatorServer, method: str, path: str, status: int, times: int = 1) -> None:
    rule = {"method": method, "path_pattern": path, "status": status, "times": times}
    httpx.post(emulator.config.public_base_url + "/_emulator/faults", json=rule).raise_for_status()


def environments_named(_props: dict[str, Any], name: str) -> int:
    creds = configured(EnvironmentProvider).anthropic()
    with api._sdk(creds) as sdk:
        return sum(
            1 for e in sdk.beta.environments.list(limit=100) if e.name == name and not e.archived_at
        )


# Environments


def test_environment_create_adopts_one_left_by_an_earlier_run(
    anthropic_props: dict[str, Any],
) -> None:
    props = {**anthropic_props, "name": unique("env"), "metadata": {}}
    first = configured(EnvironmentProvider).create(props)
    second = configured(EnvironmentProvider).create(props)
    assert second.id == first.id
    assert environments_named(anthropic_props, props["name"]) == 1


def test_environment_create_survives_a_transient_failure(
    emulator: EmulatorServer, anthropic_props: dict[str, Any]
) -> None:
    props = {**anthropic_props, "name": unique("env"), "metadata": {}}
    inject(emulator, "POST", r"^/v1/environments$", 503)
    result = configured(EnvironmentProvider).create(props)
    assert result.id.startswith("env_")
    assert environments_named(anthropic_props, props["name"]) == 1


def test_environment_update_renames_in_place(anthropic_props: dict[str, Any]) -> None:
    props = {**anthropic_props, "name": unique("env"), "metadata": {}}
    created = configured(EnvironmentProvider).create(props)
    renamed = {**props, "name": unique("env")}
    updated = configured(EnvironmentProvider).update(created.id, created.outs, renamed)
    assert updated.outs["environment_id"] == created.id
    assert updated.outs["name"] == renamed["name"]


def test_environment_refresh_sees_deletion_and_delete_twice_succeeds(
    anthropic_props: dict[str, Any],
) -> None:
    created = configured(EnvironmentProvider).create(
        {**anthropic_props, "name": unique("env"), "metadata": {}}
    )
    assert configured(EnvironmentProvider).read(created.id, created.outs).id == created.id
    configured(EnvironmentProvider).delete(created.id, created.outs)
    configured(EnvironmentProvider).delete(created.id, created.outs)
    assert configured(EnvironmentProvider).read(created.id, created.outs).id == ""


# Agents


def test_agent_update_makes_a_new_version(anthropic_props: dict[str, Any]) -> None:
    props = {**anthropic_props, "name": unique("agent")}
    created = configured(AgentProvider).create(props)
    updated = configured(AgentProvider).update(
        created.id, created.outs, {**props, "system": "be brief"}
    )
    assert updated.outs["version"] == created.outs["version"] + 1
    assert updated.outs["agent_id"] == created.id


def test_agent_delete_archives_it_and_refresh_sees_it_gone(anthropic_props: dict[str, Any]) -> None:
    created = configured(AgentProvider).create({**anthropic_props, "name": unique("agent")})
    configured(AgentProvider).delete(created.id, created.outs)
    configured(AgentProvider).delete(created.id, created.outs)
    assert configured(AgentProvider).read(created.id, created.outs).id == ""


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
    created = configured(ImageProvider).create(props)
    assert created.outs["image"].startswith(f"local/sandbox/{props['image_name']}:")
    pushes = len(emulator.emulator.blaxel.image_pushes)
    updated = configured(ImageProvider).update(
        created.id, created.outs, {**props, "memory_mb": 2048}
    )
    assert len(emulator.emulator.blaxel.image_pushes) == pushes
    assert updated.outs["image"] == created.outs["image"]
    configured(ImageProvider).delete(created.id, created.outs)
    assert configured(ImageProvider).read(created.id, created.outs).id == ""


def image_props(blaxel_props: dict[str, Any], tmp_path: Any, text: str) -> dict[str, Any]:
    (tmp_path / "app.py").write_text(text)
    factory = "infra.images:default_image"
    return {
        **blaxel_props,
        "image_name": unique("img"),
        "factory": factory,
        "context_dir": str(tmp_path),
        "digest": image_digest(load_image(factory, str(tmp_path))),
        "memory_mb": 1024,
    }


def test_an_image_of_another_stack_is_neither_pushed_over_nor_deleted(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], tmp_path: Any
) -> None:
    theirs = {**image_props(blaxel_props, tmp_path, "print(1)\n"), "owner": PROD_OWNER}
    created = configured(ImageProvider).create(theirs)
    pushes = len(emulator.emulator.blaxel.image_pushes)
    ours = {**theirs, "owner": OWNER, "name_key": "blaxel:workerImageName"}

    with pytest.raises(NotOurs) as err:
        configured(ImageProvider).create(ours)
    with pytest.raises(NotOurs):  # an update that would push new content
        configured(ImageProvider).update(created.id, created.outs, {**ours, "digest": "other"})
    configured(ImageProvider).delete(created.id, {**created.outs, "owner": OWNER})

    message = str(err.value)
    assert theirs["image_name"] in message and "stack cma-blaxel/prod" in message
    assert "blaxel:workerImageName" in message
    assert len(emulator.emulator.blaxel.image_pushes) == pushes  # nothing pushed
    assert emulator.emulator.blaxel.images.tags(theirs["image_name"])  # nor deleted
    live = bl.get_sandbox_by_name(configured(ImageProvider).blaxel(), theirs["image_name"])
    assert live["metadata"]["labels"]["cma-stack"] == "prod"


def test_a_push_marks_the_image_and_an_unmarked_one_is_refused_only_at_create(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], tmp_path: Any
) -> None:
    unmarked = {**image_props(blaxel_props, tmp_path, "print(1)\n"), "owner": None}
    created = configured(ImageProvider).create(unmarked)  # as an older version pushed it
    ours = {**unmarked, "owner": OWNER}
    with pytest.raises(NotOurs, match="no stack"):
        configured(ImageProvider).create(ours)

    # In our state already (pushed before marks): the next push marks it.
    (tmp_path / "app.py").write_text("print(2)\n")
    newer = {**ours, "digest": image_digest(load_image(ours["factory"], str(tmp_path)))}
    configured(ImageProvider).update(created.id, created.outs, newer)
    live = bl.get_sandbox_by_name(configured(ImageProvider).blaxel(), ours["image_name"])
    assert live["metadata"]["labels"]["cma-stack"] == "test"
    configured(ImageProvider).delete(created.id, newer)
    assert configured(ImageProvider).read(created.id, newer).id == ""


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
    created = configured(SandboxProvider).create(props)
    updated = configured(SandboxProvider).update(
        created.id, created.outs, {**props, "memory_mb": 2048, "image_digest": "sha256:2"}
    )
    assert updated.outs["url"] == created.outs["url"]
    assert created.outs["url"].startswith("http://127.0.0.1")


def test_sandbox_drops_its_public_preview_and_gets_it_back_at_the_same_url_in_place(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = configured(SandboxProvider).create(props)
    record = emulator.emulator.blaxel.get_sandbox(created.id)
    polling = configured(SandboxProvider).update(
        created.id, created.outs, {**props, "preview_name": ""}
    )
    assert polling.outs["url"] == ""
    assert emulator.emulator.blaxel.get_sandbox(created.id) is record  # updated, not replaced
    assert record.previews == {}
    read = configured(SandboxProvider).read(created.id, polling.outs)
    assert read.outs["preview_name"] == "" and read.outs["url"] == ""
    back = configured(SandboxProvider).update(created.id, polling.outs, props)
    assert back.outs["url"] == created.outs["url"]


def test_sandbox_from_an_unknown_image_fails_naming_the_image(
    blaxel_props: dict[str, Any], emulator: EmulatorServer
) -> None:
    """docs/platform-contract.md B3: Blaxel refuses an image nobody pushed (IMAGE_NOT_FOUND)."""
    props = sandbox_props(blaxel_props, "local/sandbox/never-pushed:abc")

    with pytest.raises(Invalid, match="IMAGE_NOT_FOUND") as caught:
        configured(SandboxProvider).create(props)

    assert "never-pushed:abc" in str(caught.value)
    assert props["sandbox_name"] not in emulator.emulator.blaxel.live_resources()["sandboxes"]


def test_sandbox_create_adopts_a_leftover_sandbox(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    first = configured(SandboxProvider).create(props)
    second = configured(SandboxProvider).create(props)
    assert second.outs["url"] == first.outs["url"]
    previews = bl.list_previews(configured(SandboxProvider).blaxel(), props["sandbox_name"])
    assert len(previews) == 1


def test_sandbox_refresh_sees_out_of_band_deletion(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = configured(SandboxProvider).create(props)
    bl.delete_sandbox_by_name(configured(SandboxProvider).blaxel(), props["sandbox_name"])
    assert configured(SandboxProvider).read(created.id, created.outs).id == ""


def test_sandbox_delete_takes_the_preview_down(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = configured(SandboxProvider).create(props)
    configured(SandboxProvider).delete(created.id, created.outs)
    configured(SandboxProvider).delete(created.id, created.outs)
    assert httpx.get(created.outs["url"] + "/health").status_code == 404


# Webhook endpoints


def test_the_endpoint_api_refuses_session_events_so_api_mode_cannot_serve(
    anthropic_props: dict[str, Any],
) -> None:
    """Why cma:webhookMode=api is refused at preview (infra/config.py): the organization
    webhooks API accepts only its own event types (docs/platform-contract.md)."""
    props = {**anthropic_props, "mode": "api", "url": f"https://{unique('h')}.test/webhook"}
    with pytest.raises(Invalid, match=r"session\.status_run_started"):
        configured(WebhookProvider).create(props)


def test_console_webhook_needs_no_credentials_and_passes_the_secret_on() -> None:
    props = {"mode": "console", "url": "https://x.test/webhook", "signing_secret": "whsec_abc"}
    created = configured(WebhookProvider).create(props)
    assert created.outs["signing_secret"] == "whsec_abc"
    assert created.outs["url"] == "https://x.test/webhook"
    configured(WebhookProvider).delete(created.id, created.outs)


# The orchestrator server


def test_server_restarts_in_place_when_secrets_arrive(
    emulator: EmulatorServer,
    anthropic_props: dict[str, Any],
    blaxel_props: dict[str, Any],
    orchestrator_image_ref: str,
) -> None:
    c = emulator.config
    env = configured(EnvironmentProvider).create(
        {**anthropic_props, "name": unique("env"), "metadata": {}}
    )
    sandbox = configured(SandboxProvider).create(
        sandbox_props(blaxel_props, orchestrator_image_ref)
    )
    url = sandbox.outs["url"]
    args = emulator_args(emulator)
    props = {
        **blaxel_props,
        "sandbox_name": sandbox.id,
        "url": url,
        "settings": server_settings(args, env.id, "local/sandbox/worker:1"),
        "secrets": server_secrets("", "", c.blaxel_api_key),
    }
    started = configured(ServerProvider).create(props)
    assert httpx.get(url + "/health").status_code == 200
    assert httpx.get(url + "/ready").json()["status"] == "not_ready"

    key = httpx.post(f"{c.console_url}/environments/{env.id}/keys").json()["key"]
    hook = httpx.post(
        f"{c.console_url}/webhooks",
        json={"url": url + "/webhook", "events": ["session.status_run_started"]},
    ).json()
    news = {**props, "secrets": server_secrets(key, hook["secret"], c.blaxel_api_key)}
    restarted = configured(ServerProvider).update(started.id, started.outs, news)
    assert restarted.outs["revision"] == started.outs["revision"] + 1
    assert httpx.get(url + "/ready").json()["status"] == "ready"
    assert configured(SandboxProvider).read(sandbox.id, sandbox.outs).outs["url"] == url

    configured(ServerProvider).delete(started.id, restarted.outs)
    assert configured(ServerProvider).read(started.id, restarted.outs).id == ""


def test_a_poll_mode_server_is_awaited_through_the_sandbox_api_with_no_preview(
    emulator: EmulatorServer,
    anthropic_props: dict[str, Any],
    blaxel_props: dict[str, Any],
    orchestrator_image_ref: str,
) -> None:
    c = emulator.config
    env = configured(EnvironmentProvider).create(
        {**anthropic_props, "name": unique("env"), "metadata": {}}
    )
    sandbox = configured(SandboxProvider).create(
        {**sandbox_props(blaxel_props, orchestrator_image_ref), "preview_name": ""}
    )
    assert sandbox.outs["url"] == ""
    args = emulator_args(emulator, dispatch_mode="poll")
    key = httpx.post(f"{c.console_url}/environments/{env.id}/keys").json()["key"]
    props = {
        **blaxel_props,
        "sandbox_name": sandbox.id,
        "url": "",
        "settings": server_settings(args, env.id, "local/sandbox/worker:1"),
        "secrets": server_secrets(key, "", c.blaxel_api_key, status_token="status-tok"),
        "private_port": 8000,
    }
    started = configured(ServerProvider).create(props)  # waits for /ready (no signing secret)
    assert started.outs["ready"] is True
    creds = configured(ServerProvider).blaxel()
    status, body = bl.fetch_port(creds, sandbox.id, 8000, "/ready")
    assert status == 200 and "ready" in body
    # The status command reaches /status the same way: the stack has no orchestrator_url.
    outputs = {"orchestrator_url": "", "orchestrator_sandbox": sandbox.id}
    report = orchestrator_section({**outputs, "status_token": "status-tok"}, blaxel_creds=creds)
    assert report["environment_id"] == env.id and report["dispatching"] is True
    refused = orchestrator_section({**outputs, "status_token": "wrong"}, blaxel_creds=creds)
    assert refused == {"error": f"port 8000/status of sandbox {sandbox.id} answered 401"}
    configured(ServerProvider).delete(started.id, started.outs)


def test_a_rebuilt_orchestrator_sandbox_starts_its_server_again_and_a_deleted_one_stays_gone(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    c = emulator.config
    name = unique("orch")
    sandbox = configured(SandboxProvider).create(
        {
            **sandbox_props(blaxel_props, orchestrator_image_ref),
            "sandbox_name": name,
            "state_volume": f"{name}-state",
        }
    )
    args = emulator_args(emulator)
    props = {
        **blaxel_props,
        "sandbox_name": name,
        "url": sandbox.outs["url"],
        "settings": server_settings(args, "env_x", "local/sandbox/worker:1"),
        "secrets": server_secrets("", "", c.blaxel_api_key),
        "state_file": "/app/state/server-process.json",
    }
    started = configured(ServerProvider).create(props)
    record = emulator.emulator.blaxel.get_sandbox(name)

    def serving() -> bool:
        try:
            return httpx.get(sandbox.outs["url"] + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    httpx.post(f"{c.public_base_url}/_emulator/blaxel/sandboxes/{name}/recreate").raise_for_status()
    deadline = time.monotonic() + 60
    while not serving():  # nobody calls the provider: the image's entrypoint restarts it
        assert time.monotonic() < deadline, record.processes.boot and record.processes.boot.output()
        time.sleep(0.2)
    assert configured(ServerProvider).read(started.id, started.outs).id == name

    configured(ServerProvider).delete(started.id, started.outs)
    httpx.post(f"{c.public_base_url}/_emulator/blaxel/sandboxes/{name}/recreate").raise_for_status()
    boot = record.processes.boot
    assert boot is not None and boot.wait(30)  # the entrypoint found nothing to start
    assert not serving()
    configured(SandboxProvider).delete(sandbox.id, sandbox.outs)
    assert f"{name}-state" not in emulator.emulator.blaxel.volumes


def test_an_up_that_redeploys_the_sandbox_leaves_exactly_its_own_server_running(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    c = emulator.config
    name = unique("orch")
    sandbox_in = {
        **sandbox_props(blaxel_props, orchestrator_image_ref),
        "sandbox_name": name,
        "state_volume": f"{name}-state",
        "state_file": "/app/state/server-process.json",
    }
    sandbox = configured(SandboxProvider).create(sandbox_in)
    args = emulator_args(emulator)
    server_in = {
        **blaxel_props,
        "sandbox_name": name,
        "url": sandbox.outs["url"],
        "settings": server_settings(args, "env_x", "local/sandbox/worker:1"),
        "secrets": server_secrets("", "", c.blaxel_api_key),
        "state_file": "/app/state/server-process.json",
    }
    started = configured(ServerProvider).create(server_in)
    record = emulator.emulator.blaxel.get_sandbox(name)

    # A change that redeploys the sandbox (memory): its boot must not bring back revision 1,
    # which the server resource replaces right after.
    updated = configured(SandboxProvider).update(
        name, sandbox.outs, {**sandbox_in, "memory_mb": 2048}
    )
    assert updated.outs["spec_digest"] != sandbox.outs["spec_digest"]
    boot = record.processes.boot
    assert boot is not None and boot.wait(30)
    running = [p.name for p in record.processes.list() if p.running]
    assert running == []
    restarted = configured(ServerProvider).update(
        name, started.outs, {**server_in, "sandbox_spec_digest": updated.outs["spec_digest"]}
    )
    running = [p.name for p in record.processes.list() if p.running]
    assert running == [restarted.outs["process"]] == ["orchestrator-r2"]
    configured(ServerProvider).delete(name, restarted.outs)
    configured(SandboxProvider).delete(name, updated.outs)


def test_a_server_that_fails_while_starting_fails_the_up_with_what_it_printed(
    emulator: EmulatorServer, blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    sandbox = configured(SandboxProvider).create(
        sandbox_props(blaxel_props, orchestrator_image_ref)
    )
    props = {
        **blaxel_props,
        "sandbox_name": sandbox.id,
        "url": sandbox.outs["url"],
        "settings": {},
        "command": "echo boom-at-start >&2; exit 3",
        "health_timeout_s": 60,
    }
    # Restarted without end by the platform; the first failure is what `up` reports.
    with pytest.raises(Transient, match=r"(?s)failed while starting.*boom-at-start"):
        configured(ServerProvider).create(props)
    configured(SandboxProvider).delete(sandbox.id, sandbox.outs)


def test_environment_create_takes_over_the_one_named_by_adopt_id(
    anthropic_props: dict[str, Any],
) -> None:
    existing = configured(EnvironmentProvider).create(
        {**anthropic_props, "name": unique("env"), "metadata": {}}
    )
    wanted = {**anthropic_props, "name": unique("env"), "metadata": {}, "adopt_id": existing.id}
    adopted = configured(EnvironmentProvider).create(wanted)
    assert adopted.id == existing.id
    assert adopted.outs["name"] == wanted["name"]


def test_agent_create_takes_over_the_one_named_by_adopt_id(anthropic_props: dict[str, Any]) -> None:
    existing = configured(AgentProvider).create({**anthropic_props, "name": unique("agent")})
    adopted = configured(AgentProvider).create(
        {**anthropic_props, "name": unique("agent"), "adopt_id": existing.id}
    )
    assert adopted.id == existing.id
    assert adopted.outs["version"] == existing.outs["version"] + 1


def test_sandbox_update_moves_the_preview_to_a_new_port(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = configured(SandboxProvider).create(props)
    configured(SandboxProvider).update(created.id, created.outs, {**props, "port": 9090})
    [preview] = bl.list_previews(configured(SandboxProvider).blaxel(), props["sandbox_name"])
    assert preview["spec"]["port"] == 9090


def test_sandbox_update_without_preview_name_keeps_the_default_preview(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    created = configured(SandboxProvider).create(props)
    configured(SandboxProvider).update(created.id, created.outs, {**props, "memory_mb": 1024})
    [preview] = bl.list_previews(configured(SandboxProvider).blaxel(), props["sandbox_name"])
    assert preview["metadata"]["name"] == "public"


# Stack isolation: only our own objects are adopted


def test_sandbox_of_another_stack_is_refused_naming_it_its_owner_and_the_key(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    theirs = {**sandbox_props(blaxel_props, orchestrator_image_ref)}
    theirs["owner"] = {"project": "cma-blaxel", "stack": "prod"}
    created = configured(SandboxProvider).create(theirs)
    ours = {**theirs, "owner": OWNER, "name_key": "blaxel:orchestratorSandboxName"}
    with pytest.raises(NotOurs) as err:
        configured(SandboxProvider).create(ours)
    message = str(err.value)
    assert theirs["sandbox_name"] in message
    assert "stack cma-blaxel/prod" in message and "blaxel:orchestratorSandboxName" in message
    assert "blaxel:importOrchestratorSandbox" in message
    live = bl.get_sandbox_by_name(configured(SandboxProvider).blaxel(), theirs["sandbox_name"])
    assert live["metadata"]["labels"]["cma-stack"] == "prod"  # nothing changed
    assert configured(SandboxProvider).read(created.id, created.outs).id == created.id


def test_unmarked_sandbox_is_refused_unless_imported(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    configured(SandboxProvider).create({**props, "owner": None})
    with pytest.raises(NotOurs, match="no stack"):
        configured(SandboxProvider).create(props)
    adopted = configured(SandboxProvider).create({**props, "adopt": True})
    live = bl.get_sandbox_by_name(configured(SandboxProvider).blaxel(), props["sandbox_name"])
    assert adopted.outs["owner"] == OWNER
    assert live["metadata"]["labels"]["cma-stack"] == "test"


def test_environment_and_agent_of_another_stack_are_refused(
    anthropic_props: dict[str, Any],
) -> None:
    other = {"project": "cma-blaxel", "stack": "prod"}
    env_name, agent_name = unique("env"), unique("agent")
    env = configured(EnvironmentProvider).create({"name": env_name, "owner": other})
    agent = configured(AgentProvider).create({"name": agent_name, "owner": other})
    with pytest.raises(NotOurs, match=f"{env_name}.*stack cma-blaxel/prod.*cma:environmentName"):
        configured(EnvironmentProvider).create(
            {**anthropic_props, "name": env_name, "name_key": "cma:environmentName"}
        )
    with pytest.raises(NotOurs, match="cma:importAgentId"):
        configured(AgentProvider).create({**anthropic_props, "name": agent_name})
    assert configured(AgentProvider).read(agent.id, agent.outs).outs["version"] == 1
    assert environments_named({}, env_name) == 1
    # An explicit import takes it over.
    imported = configured(EnvironmentProvider).create(
        {**anthropic_props, "name": env_name, "adopt_id": env.id}
    )
    assert imported.id == env.id and imported.outs["owner"] == OWNER


# Credentials at call time


def test_credentials_come_from_the_configured_stack_config_not_the_inputs(
    anthropic_props: dict[str, Any],
) -> None:
    revoked = {"cma:anthropicApiKey": "sk-ant-api03-revoked"}
    # An input left by the previous version's state is ignored (and not kept as an output).
    created = configured(EnvironmentProvider).create(
        {**anthropic_props, "anthropic_api_key": "sk-ant-api03-revoked", "name": unique("env")}
    )
    assert "anthropic_api_key" not in created.outs
    # The current config is what a refresh uses, whatever the state holds.
    assert configured(EnvironmentProvider).read(created.id, created.outs).id == created.id
    with pytest.raises(Exception, match="401"):
        configured(EnvironmentProvider, {**STACK_CONFIG, **revoked}).read(created.id, created.outs)


# Refresh reads every diffed field and returns inputs


def test_sandbox_refresh_returns_the_drifted_fields_as_inputs(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    provider = configured(SandboxProvider)
    created = provider.create(props)
    creds = provider.blaxel()
    live = bl.get_sandbox_by_name(creds, props["sandbox_name"])
    body = {
        "metadata": {"name": props["sandbox_name"], "labels": {"team": "x"}},
        "spec": {**live["spec"], "runtime": {**live["spec"]["runtime"], "memory": 1024}},
    }
    bl.update_sandbox_spec(creds, props["sandbox_name"], body)
    read = provider.read(created.id, created.outs)
    assert read.inputs is not None
    assert read.inputs["memory_mb"] == 1024 and read.inputs["labels"] == {"team": "x"}
    assert read.inputs["owner"] is None  # the mark was removed too
    diff = provider.diff(created.id, read.outs or {}, props)
    assert diff.changes is True and diff.replaces == []


def test_a_missing_preview_keeps_the_url_and_is_recreated_by_the_next_up(
    blaxel_props: dict[str, Any], orchestrator_image_ref: str
) -> None:
    props = sandbox_props(blaxel_props, orchestrator_image_ref)
    provider = configured(SandboxProvider)
    created = provider.create(props)
    bl.delete_preview(provider.blaxel(), props["sandbox_name"], "public")
    read = provider.read(created.id, created.outs)
    assert read.outs is not None and read.outs["url"] == created.outs["url"]
    assert read.outs["preview_name"] == ""
    assert provider.diff(created.id, read.outs, props).changes is True
    updated = provider.update(created.id, read.outs, props)
    assert updated.outs is not None and updated.outs["url"]
    [preview] = bl.list_previews(provider.blaxel(), props["sandbox_name"])
    assert preview["metadata"]["name"] == "public"


def test_agent_refresh_shows_an_out_of_band_change(anthropic_props: dict[str, Any]) -> None:
    provider = configured(AgentProvider)
    created = provider.create({**anthropic_props, "name": unique("agent"), "system": "a"})
    api.update_agent(
        provider.anthropic(), created.id, created.outs["version"], {"system": "changed"}
    )
    read = provider.read(created.id, created.outs)
    assert read.inputs is not None and read.inputs["system"] == "changed"
    assert provider.diff(created.id, read.outs or {}, {**anthropic_props, **created.outs}).changes


def test_agent_update_sends_the_live_version_after_an_out_of_band_update(
    anthropic_props: dict[str, Any],
) -> None:
    provider = configured(AgentProvider)
    props = {**anthropic_props, "name": unique("agent")}
    created = provider.create(props)
    api.update_agent(provider.anthropic(), created.id, created.outs["version"], {"system": "x"})
    with pytest.raises(Exception, match=r"(?i)version|409|conflict"):
        # What sending the stale version from state would do: the emulator refuses it.
        api.update_agent(provider.anthropic(), created.id, created.outs["version"], {"system": "y"})
    updated = provider.update(created.id, created.outs, {**props, "system": "z"})
    assert updated.outs is not None and updated.outs["version"] == created.outs["version"] + 2


# Worker cleanup at destroy


def test_worker_cleanup_deletes_exactly_this_environments_workers_and_volumes(
    emulator: EmulatorServer, orchestrator_image_ref: str
) -> None:
    from infra.providers.workers import WorkerCleanupProvider

    creds = configured(SandboxProvider).blaxel()
    mine, theirs = unique("env"), unique("env")

    def sandbox(name: str, labels: dict[str, str]) -> str:
        body = {
            "metadata": {"name": name, "labels": labels},
            "spec": {"runtime": {"image": orchestrator_image_ref, "memory": 512}},
        }
        bl.create_sandbox_from_spec(creds, body)
        return name

    def volume(name: str, labels: dict[str, str]) -> str:
        body = {"metadata": {"name": name, "labels": labels}, "spec": {"size": 512}}
        response = httpx.post(
            emulator.config.blaxel_base_url + "/volumes",
            json=body,
            headers={
                "Authorization": f"Bearer {creds.api_key}",
                "X-Blaxel-Workspace": creds.workspace,
            },
        )
        response.raise_for_status()
        return name

    worker = {"cma-role": "worker", "cma-environment-id": mine}
    gone = [sandbox(unique("w"), worker), sandbox(unique("w"), worker)]
    gone_volumes = [volume(unique("v"), worker)]
    kept = [
        sandbox(unique("w"), {"cma-role": "worker", "cma-environment-id": theirs}),
        sandbox(unique("o"), {"cma-environment-id": mine}),
    ]
    kept_volumes = [volume(unique("v"), {"cma-role": "worker", "cma-environment-id": theirs})]

    provider = configured(WorkerCleanupProvider)
    created = provider.create({"environment_id": mine})
    provider.delete(created.id, created.outs)

    live = emulator.emulator.blaxel.live_resources()
    assert not set(gone) & set(live["sandboxes"]) and set(kept) <= set(live["sandboxes"])
    assert not set(gone_volumes) & set(live["volumes"])
    assert set(kept_volumes) <= set(live["volumes"])


def test_environment_referenced_by_a_session_is_archived_not_deleted_on_destroy(
    emulator: EmulatorServer, anthropic_props: dict[str, Any]
) -> None:
    env = configured(EnvironmentProvider).create({**anthropic_props, "name": unique("env")})
    agent = configured(AgentProvider).create({**anthropic_props, "name": unique("agent")})
    with api._sdk(configured(EnvironmentProvider).anthropic()) as sdk:
        sdk.beta.sessions.create(agent=agent.id, environment_id=env.id)

    configured(EnvironmentProvider).delete(env.id, env.outs)

    kept = emulator.emulator.anthropic.environments[env.id]
    assert kept.archived_at is not None  # archived, so the session's history stays
    assert configured(EnvironmentProvider).read(env.id, env.outs).id == ""
