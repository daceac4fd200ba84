"""One failed build-status poll during an image push must not stall `up` for 15 minutes.

The Blaxel SDK's `build_sync` only accepts DEPLOYED after it has *seen* another status; a poll
that fails (any error reads as "no status") while the build passes through BUILDING/DEPLOYING
meant it never saw one and polled a DEPLOYED image for its full 900 s timeout. Found by this
suite; infra now waits on its own (fd021cf), and this test keeps it that way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from emulator.config import fast_timing
from emulator.faults import FaultRule
from emulator.server import EmulatorServer
from infra.images import image_digest, load_image
from infra.providers.image import ImageProvider
from tests.faults.conftest import FaultReport
from tests.faults.secret_scan import LogSources

FACTORY = "orchestrator_app.image:orchestrator_image"


@pytest.fixture
def server(log_sources: LogSources) -> Iterator[EmulatorServer]:
    with EmulatorServer(timing=fast_timing()) as running:
        log_sources.watch_emulator(running)
        try:
            yield running
        finally:
            log_sources.forget_emulator(running)


@pytest.mark.timeout(120)  # a guard against the 15-minute stall, not a measurement
def test_an_image_push_with_one_failed_status_poll_finishes_promptly(
    server: EmulatorServer, fault_report: FaultReport
) -> None:
    c = server.config
    name = f"img-{uuid.uuid4().hex[:8]}"
    props = {
        "image_name": name,
        "factory": FACTORY,
        "context_dir": "orchestrator_app",
        "digest": image_digest(load_image(FACTORY, "")),
        "memory_mb": 2048,
    }
    # Credentials come from the stack config, as the provider host passes it to configure().
    provider = ImageProvider()
    stack_config = {
        "blaxel:baseUrl": c.blaxel_base_url,
        "blaxel:workspace": c.blaxel_workspace,
        "blaxel:apiKey": c.blaxel_api_key,
    }
    provider.configure(ConfigureRequest(Config(stack_config, "cma-blaxel")))
    rule = server.emulator.faults.add(FaultRule("GET", rf"^/blaxel/v0/sandboxes/{name}$", 503))
    fault_report.faults_injected += 1
    try:
        created = provider.create(props)
    finally:
        assert rule.hits == 1
    assert (created.outs or {})["image"].startswith(f"local/sandbox/{name}:")
