"""The strict Blaxel contract (docs/platform-contract.md): each test cites the row it pins."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from blaxel.core import SandboxInstance
from blaxel.core.client.client import client
from blaxel.core.sandbox.default.sandbox import SandboxAPIError
from blaxel.core.sandbox.types import ResponseError

from emulator.blaxel import BlaxelBackend
from tests.emulator.blaxel.conftest import until_status

pytestmark = pytest.mark.anyio


def _context(dockerfile: str) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Dockerfile", dockerfile)
        zf.writestr("final.txt", "final stage")
        zf.writestr("builder.txt", "builder stage")
    return archive.getvalue()


async def _run(sandbox: SandboxInstance, command: str) -> str:
    result = await sandbox.process.exec({"command": command, "wait_for_completion": True})
    return str(result.stdout) + str(result.stderr)


@pytest.mark.parametrize("port", [80, 443, 8080])
async def test_a_reserved_runtime_port_refuses_the_sandbox(
    backend: BlaxelBackend, port: int
) -> None:
    """Row "reserved ports": docs.blaxel.ai/Sandboxes/Ports."""
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": f"rp-{port}", "ports": [{"target": port}]})

    assert caught.value.status_code == 400
    assert caught.value.code == "INVALID_PORTS"
    assert f"port {port} is reserved" in str(caught.value)
    assert backend.live_resources()["sandboxes"] == []


async def test_an_image_nobody_pushed_fails_creation_with_image_not_found(
    backend: BlaxelBackend,
) -> None:
    """Row "unknown image": SDK errors.py lists IMAGE_NOT_FOUND among creation codes."""
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "no-img", "image": "test-ws/sandbox/never:abc"})

    assert caught.value.status_code == 400
    assert caught.value.code == "IMAGE_NOT_FOUND"
    assert "never:abc" in str(caught.value)
    assert backend.live_resources()["sandboxes"] == []


async def test_a_hub_image_needs_no_push(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "hub", "image": "blaxel/py-app:latest"})

    assert sandbox.spec.runtime.image == "blaxel/py-app:latest"


async def test_env_path_extends_the_base_images_default_path(backend: BlaxelBackend) -> None:
    """Row "Dockerfile ENV PATH": `${PATH}` is Docker's default, so bash stays reachable."""
    image = backend.images.push(
        "pathy", _context('FROM python:3.11-slim\nENV PATH="/opt/tools/bin:${PATH}"\n')
    )
    sandbox = await SandboxInstance.create({"name": "pathy", "image": image.ref})

    out = await _run(sandbox, 'echo "$PATH"; command -v bash; python3 -c "print(7)"')

    assert "/opt/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in out
    assert "bash" in out.splitlines()[1]
    assert out.splitlines()[2] == "7"


async def test_only_the_final_stage_of_a_multi_stage_build_applies(
    backend: BlaxelBackend,
) -> None:
    """Row "multi-stage Dockerfile": earlier stages only feed `COPY --from`."""
    dockerfile = (
        "FROM python:3.11 AS builder\nWORKDIR /build\nENV STAGE=builder ONLY_BUILDER=1\n"
        "COPY builder.txt /build/\n"
        "FROM python:3.11-slim\nWORKDIR /app\nENV STAGE=final\nCOPY final.txt /app/\n"
        "COPY --from=builder /build /app/from-builder\n"
    )
    image = backend.images.push("multi", _context(dockerfile))
    sandbox = await SandboxInstance.create({"name": "multi", "image": image.ref})

    out = await _run(sandbox, 'echo "$STAGE-${ONLY_BUILDER:-unset}"; pwd; ls; ls /build 2>&1')

    lines = out.splitlines()
    assert lines[0] == "final-unset"
    assert lines[1].endswith("/app")
    assert "final.txt" in lines
    assert "builder.txt" not in lines


async def test_create_if_not_exist_over_a_failed_sandbox_returns_it_as_it_is(
    backend: BlaxelBackend,
) -> None:
    """Row "createIfNotExist over FAILED" (DESIGN §3; the SDK docstring says otherwise)."""
    await SandboxInstance.create({"name": "broken"})
    backend.fail_sandbox("broken")

    returned = await SandboxInstance.create_if_not_exists({"name": "broken"})

    assert returned.status == "FAILED"
    assert backend.get_sandbox("broken").status == "FAILED"


async def test_a_create_during_deletion_is_refused_and_create_if_not_exist_waits(
    backend: BlaxelBackend,
) -> None:
    """Row "delete goes through DELETING"; SDK create_if_not_exists waits for the deletion."""
    backend.timing.update(sandbox_delete_s=0.3)
    await SandboxInstance.create({"name": "cycle"})
    deleted = await SandboxInstance.delete("cycle")

    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "cycle"})
    again = await SandboxInstance.create_if_not_exists({"name": "cycle"})

    assert deleted.status == "DELETING"
    assert caught.value.status_code == 409
    assert caught.value.code == "SANDBOX_DELETION_IN_PROGRESS"
    assert again.status == "DEPLOYING"


async def test_changing_envs_after_creation_is_refused(backend: BlaxelBackend) -> None:
    """Row "envs fixed at creation": docs.blaxel.ai/Sandboxes/Variables-and-secrets."""
    await SandboxInstance.create({"name": "envs", "envs": [{"name": "A", "value": "1"}]})
    spec = (await SandboxInstance.get("envs")).spec.to_dict()
    spec["runtime"]["envs"] = [{"name": "A", "value": "2"}]

    with pytest.raises(SandboxAPIError) as caught:
        await _put_spec("envs", spec)

    assert caught.value.status_code == 400
    assert "cannot be added or changed" in str(caught.value)


async def _put_spec(name: str, spec: dict[str, object]) -> None:
    control = client.get_async_httpx_client()
    response = await control.put(f"/sandboxes/{name}", json={"spec": spec})
    if response.status_code >= 400:
        raise SandboxAPIError(response.text, status_code=response.status_code)


async def test_an_update_that_keeps_the_envs_is_accepted(backend: BlaxelBackend) -> None:
    await SandboxInstance.create({"name": "envs-ok", "envs": [{"name": "A", "value": "1"}]})
    spec = (await SandboxInstance.get("envs-ok")).spec.to_dict()
    spec["runtime"]["memory"] = 8192

    await _put_spec("envs-ok", spec)

    assert backend.get_sandbox("envs-ok").spec["runtime"]["envs"][0]["value"] == "1"


async def test_the_first_sandbox_call_after_standby_fails_once(backend: BlaxelBackend) -> None:
    """Row "standby": idle ~15 s without keepAlive → standby; the first call may fail."""
    sandbox = await SandboxInstance.create({"name": "sleepy"})
    await until_status("sleepy", "DEPLOYED")
    backend.advance_clock(16)
    read = (await client.get_async_httpx_client().get("/sandboxes/sleepy")).json()

    with pytest.raises(ResponseError) as caught:
        await sandbox.fs.ls("/")
    listing = await sandbox.fs.ls("/")

    assert read["state"] == "STANDBY"
    assert caught.value.status == 503
    assert listing.files == []


async def test_a_keep_alive_process_keeps_the_sandbox_out_of_standby(
    backend: BlaxelBackend,
) -> None:
    sandbox = await SandboxInstance.create({"name": "awake"})
    await sandbox.process.exec({"name": "srv", "command": "sleep 30", "keep_alive": True})
    backend.advance_clock(60)

    listing = await sandbox.fs.ls("/")

    assert listing is not None


async def test_an_unknown_region_is_refused(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "far", "region": "mars-1"})

    assert caught.value.code == "INVALID_REGION"
    assert "mars-1" in str(caught.value)


async def test_memory_outside_the_bounds_is_refused(backend: BlaxelBackend) -> None:
    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create({"name": "tiny", "memory": 128})

    assert caught.value.status_code == 400
    assert "spec.runtime.memory" in str(caught.value)


async def test_configuration_lists_regions_and_proxy_availability(backend: BlaxelBackend) -> None:
    """Row "configuration": `GET /v0/configuration` (SDK api/configurations/get_configuration.py)."""
    from blaxel.core.client.api.configurations import get_configuration

    answer = await get_configuration.asyncio_detailed(client=client)

    assert answer.status_code == 200
    parsed: Any = answer.parsed
    regions = {r.name: r for r in parsed.regions}
    assert set(regions) == set(backend.config.regions)
    assert regions["us-pdx-1"].proxy_available is True


async def test_proxy_routing_secrets_are_write_only(backend: BlaxelBackend) -> None:
    """Row "proxy secrets": "Write-only: never returned in API responses" (SDK ProxyTarget)."""
    routing = [
        {
            "destinations": ["api.example.com"],
            "headers": {"Authorization": "Bearer {{SECRET:k}}"},
            "secrets": {"k": "sk-very-secret"},
        }
    ]
    control = client.get_async_httpx_client()
    body = {"metadata": {"name": "proxied"}, "spec": {"network": {"proxy": {"routing": routing}}}}
    created = await control.post("/sandboxes", json=body)
    read = await control.get("/sandboxes/proxied")
    spec = read.json()["spec"]
    await _put_spec("proxied", spec)  # an update from what was read keeps the stored secret

    assert created.status_code == 200
    assert "sk-very-secret" not in created.text + read.text
    assert "secrets" not in spec["network"]["proxy"]["routing"][0]
    stored = backend.get_sandbox("proxied").spec["network"]["proxy"]["routing"][0]
    assert stored["secrets"] == {"k": "sk-very-secret"}


async def test_a_volume_in_another_region_cannot_be_attached(backend: BlaxelBackend) -> None:
    """Row "volume region": "Must match the region of sandboxes it attaches to" (SDK VolumeSpec)."""
    from blaxel.core import VolumeInstance

    await VolumeInstance.create({"name": "far-vol", "region": "eu-lon-1"})

    with pytest.raises(SandboxAPIError) as caught:
        await SandboxInstance.create(
            {
                "name": "near",
                "region": "us-pdx-1",
                "volumes": [{"name": "far-vol", "mount_path": "/data"}],
            }
        )

    assert caught.value.code == "INVALID_VOLUME_REGION"


async def test_volume_labels_are_kept_and_listed(backend: BlaxelBackend) -> None:
    control = client.get_async_httpx_client()
    body = {
        "metadata": {"name": "labelled", "labels": {"cma-blaxel/session": "s1"}},
        "spec": {"region": "us-pdx-1"},
    }

    await control.post("/volumes", json=body)
    listed = (await control.get("/volumes")).json()["data"]

    assert [v["metadata"]["labels"] for v in listed] == [{"cma-blaxel/session": "s1"}]


async def test_a_malformed_process_request_is_a_400_in_the_sandbox_api_shape(
    backend: BlaxelBackend,
) -> None:
    """Row "error shapes": never a bare 500."""
    sandbox = await SandboxInstance.create({"name": "badjson"})
    await until_status("badjson", "DEPLOYED")
    control = client.get_async_httpx_client()

    answer = await control.post(
        backend.sandbox_url("badjson") + "/process",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 400
    assert answer.json()["error"].startswith("invalid JSON body")
    assert sandbox.metadata.name == "badjson"


async def test_a_deleting_sandbox_is_no_leak(backend: BlaxelBackend) -> None:
    backend.timing.update(sandbox_delete_s=5)
    await SandboxInstance.create({"name": "leaving"})

    await SandboxInstance.delete("leaving")

    assert backend.get_sandbox("leaving").status == "DELETING"
    assert backend.live_resources()["sandboxes"] == []
