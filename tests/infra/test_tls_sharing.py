"""The stack's HTTP clients share one TLS context (infra/clients/tls.py): the SDK's one client
per sandbox-API call, and the endpoint polls of `up`, no longer load the CA bundle each."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
from blaxel.core.client.models import Metadata, Sandbox, SandboxSpec
from blaxel.core.sandbox.sync.sandbox import SyncSandboxInstance

from infra.clients import blaxel, orchestrator
from infra.clients.errors import Transient
from infra.clients.tls import shared_tls_context

CREDS = blaxel.BlaxelCredentials(
    base_url="http://127.0.0.1:9/v0", workspace="ws", api_key="bl-test-key"
)
ACTIONS = ("process", "fs", "network")


def sandbox_instance(force_url: str | None = None) -> SyncSandboxInstance:
    sandbox = Sandbox(metadata=Metadata(name="s1", url="http://127.0.0.1:9/s1"), spec=SandboxSpec())
    return SyncSandboxInstance(sandbox, force_url=force_url, headers={"X-Extra": "1"})


def tls_context_of(client: httpx.Client) -> Any:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


@pytest.mark.parametrize("force_url", [None, "http://127.0.0.1:9/forced"])
def test_sandbox_api_clients_keep_the_sdks_url_and_headers_with_the_shared_tls_context(
    force_url: str | None,
) -> None:
    blaxel._connect(CREDS)
    ours, sdks = blaxel._share_tls(sandbox_instance(force_url)), sandbox_instance(force_url)
    for action in ACTIONS:
        with getattr(ours, action).get_client() as mine, getattr(sdks, action).get_client() as its:
            assert mine.base_url == its.base_url, action
            assert dict(mine.headers) == dict(its.headers), action
            assert tls_context_of(mine) is shared_tls_context(), action
            assert tls_context_of(its) is not shared_tls_context(), action


def test_many_sandbox_api_clients_and_endpoint_polls_build_no_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blaxel._connect(CREDS)
    shared_tls_context()  # built once, before counting
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)

    instance = blaxel._share_tls(sandbox_instance())
    for _ in range(5):
        for action in ACTIONS:
            getattr(instance, action).get_client().close()
    for _ in range(5):  # nothing listens on port 9 of loopback: each poll is refused
        with pytest.raises(Transient):
            orchestrator.get_endpoint("http://127.0.0.1:9/health", timeout_s=1)
    assert built == []

    # The SDK's own client does build one (one more per proxy variable): the count moves.
    sandbox_instance().process.get_client().close()
    assert built
