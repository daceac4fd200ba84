"""The Anthropic half as the whole emulator serves it: /v1 at the root, the Console under /_console."""

from __future__ import annotations

import anthropic
import httpx

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from tests.emulator.anthropic.helpers import self_hosted_environment


def test_the_full_emulator_serves_the_api_and_the_console() -> None:
    with EmulatorServer(timing=fast_timing()) as server:
        config = server.config
        client = anthropic.Anthropic(
            api_key=config.anthropic_api_key, base_url=config.anthropic_base_url, max_retries=0
        )
        with client:
            environment = self_hosted_environment(client)
            key = httpx.post(
                f"{config.console_url}/environments/{environment.id}/keys", trust_env=False
            )
            assert key.json()["key"].startswith("sk-ant-oat01-")
            worker = client.with_options(api_key=None, auth_token=key.json()["key"])
            assert worker.beta.environments.work.poll(environment.id) is None
        assert server.emulator.anthropic.live_resources()["environments"] == [environment.id]
        assert list(server.emulator.anthropic.environments) == [environment.id]
