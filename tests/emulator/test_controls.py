"""The emulator's test controls: fault injection in each platform's error shape, the clock."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from emulator.faults import FaultRule
from emulator.server import EmulatorServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


def test_an_injected_anthropic_fault_reaches_the_sdk_as_that_status(server: EmulatorServer) -> None:
    server.emulator.faults.add(
        FaultRule(method="GET", path_pattern=r"/v1/environments$", status=409)
    )
    with anthropic.Anthropic(
        api_key=server.config.anthropic_api_key, base_url=server.config.anthropic_base_url
    ) as client:
        with pytest.raises(anthropic.ConflictError, match="injected fault"):
            client.beta.environments.list()
        assert list(client.beta.environments.list()) == []  # only once


def test_an_injected_blaxel_fault_has_blaxels_error_shape(server: EmulatorServer) -> None:
    server.emulator.faults.add(
        FaultRule(method="GET", path_pattern=r"/blaxel/v0/sandboxes", status=503)
    )
    answer = httpx.get(server.config.blaxel_base_url + "/sandboxes")
    assert answer.status_code == 503
    assert answer.json()["code"] == 503
    assert answer.json()["message"] == "injected fault"


def test_faults_are_added_and_counted_over_http(server: EmulatorServer) -> None:
    controls = server.config.public_base_url + "/_emulator"
    before = httpx.get(controls + "/faults").json()["injected"]
    added = httpx.post(controls + "/faults", json={"method": "GET", "path_pattern": "/v1/agents$"})
    assert added.status_code == 200
    assert httpx.get(server.config.anthropic_base_url + "/v1/agents").status_code == 500
    assert httpx.get(controls + "/faults").json()["injected"] == before + 1


def test_a_bad_fault_rule_is_refused_naming_the_problem(server: EmulatorServer) -> None:
    answer = httpx.post(server.config.public_base_url + "/_emulator/faults", json={"colour": 1})
    assert answer.status_code == 400
    assert "bad fault rule" in answer.json()["error"]


def test_the_clock_moves_both_platforms_forward(server: EmulatorServer) -> None:
    before = server.emulator.anthropic.clock.now()
    answer = httpx.post(server.config.public_base_url + "/_emulator/clock", json={"seconds": 3600})
    assert answer.status_code == 200
    assert (server.emulator.anthropic.clock.now() - before).total_seconds() >= 3600
    assert server.emulator.blaxel.clock_offset >= 3600
