"""The Blaxel routes as mounted by the real emulator app (`EmulatorServer`), through the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blaxel.core import SandboxInstance
from blaxel.core.client.api.compute import get_sandbox
from blaxel.core.client.client import client
from blaxel.core.client.models import Error

from emulator.blaxel import BlaxelBackend
from emulator.blaxel.exceptions import fault_body
from emulator.config import fast_timing
from emulator.server import EmulatorServer
from tests.emulator.blaxel.conftest import API_KEY, WORKSPACE, BlaxelServer, point_sdk_at

pytestmark = pytest.mark.anyio


@pytest.fixture
def emulator_server(blaxel_server: BlaxelServer) -> Iterator[EmulatorServer]:
    with EmulatorServer(
        blaxel_api_key=API_KEY, blaxel_workspace=WORKSPACE, timing=fast_timing()
    ) as server:
        point_sdk_at(server.config.blaxel_base_url)
        yield server
    point_sdk_at(blaxel_server.config.blaxel_base_url)


async def test_the_emulator_app_serves_control_plane_and_sandbox_api(
    backend: BlaxelBackend, emulator_server: EmulatorServer
) -> None:
    sandbox = await SandboxInstance.create({"name": "via-app"})
    result = await sandbox.process.exec({"command": "echo ok", "wait_for_completion": True})

    assert (
        sandbox.metadata.url == f"{emulator_server.config.public_base_url}/blaxel/sandboxes/via-app"
    )
    assert result.stdout == "ok\n"
    assert emulator_server.emulator.blaxel.live_resources()["sandboxes"] == ["via-app"]


def test_fault_body_parses_as_every_blaxel_error_model() -> None:
    from blaxel.core.client.models.sandbox_error import SandboxError
    from blaxel.core.sandbox.client.models import ErrorResponse

    body = fault_body(503)

    assert Error.from_dict(body) is not None
    assert SandboxError.from_dict(body) is not None
    assert ErrorResponse.from_dict(body) is not None


async def test_unknown_sandbox_answer_parses_as_the_sdk_error_model(
    backend: BlaxelBackend,
) -> None:
    response = await get_sandbox.asyncio_detailed("nope", client=client)

    assert isinstance(response.parsed, Error)
    assert (response.parsed.code, response.parsed.error) == (404, "SANDBOX_NOT_FOUND")
    assert response.status_code == 404
