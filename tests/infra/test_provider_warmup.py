"""The warm-up asks the engine for the dynamic provider's package, without waiting, and does
nothing where no engine runs (tests/engine/test_provider_warmup.py runs it on the real one)."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2

from infra import provider_warmup


class RecordingStub:
    """Stands for the engine's ResourceMonitor gRPC stub: `Invoke.future` starts a call."""

    def __init__(self) -> None:
        self.sent: list[resource_pb2.ResourceInvokeRequest] = []
        self.Invoke = self  # the stub's method object, whose `.future` is the non-blocking form

    def future(self, request: resource_pb2.ResourceInvokeRequest) -> str:
        self.sent.append(request)
        return "call in flight"


def test_the_invoke_names_the_dynamic_providers_package_and_is_held_while_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = RecordingStub()
    monkeypatch.setattr(settings.SETTINGS, "monitor", stub)
    monkeypatch.setattr(provider_warmup, "_in_flight", [])

    provider_warmup.start_dynamic_provider_host()

    [request] = stub.sent
    # The package of `pulumi-python:dynamic:Resource`, with no version: the same default provider.
    assert request.tok.split(":")[0] == "pulumi-python"
    assert request.version == "" and request.provider == ""
    assert provider_warmup._in_flight == ["call in flight"]


class NoCalls(Mocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        raise AssertionError("no resource")

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the warm-up invoked {args.token} under mocks")


@pytest.mark.parametrize("monitor", [None, MockMonitor(NoCalls())], ids=["no engine", "mocks"])
def test_without_an_engines_stub_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch, monitor: Any
) -> None:
    monkeypatch.setattr(settings.SETTINGS, "monitor", monitor)
    monkeypatch.setattr(provider_warmup, "_in_flight", [])

    provider_warmup.start_dynamic_provider_host()

    assert provider_warmup._in_flight == []
