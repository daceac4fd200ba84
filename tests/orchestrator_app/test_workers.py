from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from blaxel.core.client.models import SandboxNetwork
from blaxel.core.errors import BlaxelError as SdkBlaxelError
from blaxel.core.sandbox import is_valid_sandbox_name
from blaxel.core.sandbox.types import SandboxCreateConfiguration

from orchestrator_app.errors import BlaxelError, BlaxelNotFound
from orchestrator_app.sandboxes import as_blaxel_error, with_retries
from orchestrator_app.settings import Settings
from orchestrator_app.workers import (
    sessions_token_of,
    worker_process_env,
    worker_process_name,
    worker_process_request,
    worker_sandbox_name,
    worker_sandbox_spec,
    worker_volume_name,
    worker_volume_spec,
)

SESSION = "sesn_01AbCdEfGhIjKlMnOpQrStUv"


@pytest.mark.parametrize(
    "session_id",
    [SESSION, "sesn_" + "x" * 200, "SESN__weird..id--", "a", "sesn_01ABC"],
)
def test_worker_sandbox_names_are_valid_blaxel_names(session_id: str) -> None:
    name = worker_sandbox_name(session_id)
    assert is_valid_sandbox_name(name)
    assert len(name) <= 49


def test_worker_sandbox_name_is_stable_and_readable() -> None:
    assert worker_sandbox_name(SESSION) == worker_sandbox_name(SESSION)
    assert "sesn-01abcdef" in worker_sandbox_name(SESSION)


def test_session_ids_differing_only_by_case_get_different_sandboxes() -> None:
    assert worker_sandbox_name("sesn_01ABC") != worker_sandbox_name("sesn_01abc")


def test_process_and_volume_names_are_valid_too() -> None:
    assert is_valid_sandbox_name(worker_process_name("work_01XyZ"))
    assert is_valid_sandbox_name(worker_volume_name(SESSION))


def test_worker_env_holds_exactly_the_contract_variables() -> None:
    env = worker_process_env(
        base_url="http://127.0.0.1:1",
        environment_id="env_1",
        session_id=SESSION,
        work_id="work_1",
        work_secret="c2VjcmV0",
        max_idle_seconds=60,
    )
    assert sorted(env) == [
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_ENVIRONMENT_ID",
        "ANTHROPIC_SESSION_ID",
        "ANTHROPIC_WORK_ID",
        "ANTHROPIC_WORK_SECRET",
        "CMA_WORKER_MAX_IDLE",
    ]
    assert env["CMA_WORKER_MAX_IDLE"] == "60"


def test_the_environment_key_reaches_the_worker_only_through_the_explicit_fallback() -> None:
    common: dict[str, Any] = {
        "base_url": "http://127.0.0.1:1",
        "environment_id": "env_1",
        "session_id": SESSION,
        "work_id": "work_1",
        "max_idle_seconds": 60,
    }
    without = worker_process_env(work_secret=None, **common)
    assert "ANTHROPIC_ENVIRONMENT_KEY" not in without
    assert "ANTHROPIC_WORK_SECRET" not in without
    key = "sk-ant-oat01-fallback"
    fallback = worker_process_env(work_secret=None, fallback_environment_key=key, **common)
    assert fallback["ANTHROPIC_ENVIRONMENT_KEY"] == key


def test_a_sessions_token_is_read_from_the_secret_like_the_sdk_does() -> None:
    import base64

    def secret(payload: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    assert sessions_token_of(secret({"sessions_token": "sk-ant-sst01-x"})) == "sk-ant-sst01-x"
    assert sessions_token_of(secret({"ingress_token": "t"})) is None
    assert sessions_token_of(secret({"sessions_token": ""})) is None
    assert sessions_token_of("not base64 json!") is None
    assert sessions_token_of(None) is None


def test_worker_process_request_starts_python_m_worker_without_waiting() -> None:
    settings = Settings(worker_workdir="/app")
    request = worker_process_request(settings, {"A": "b"}, "work_1")
    assert request["command"] == "python -m worker"
    assert request["working_dir"] == "/app"
    assert request["wait_for_completion"] is False
    assert request["env"] == {"A": "b"}


def _settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "environment_id": "env_1",
        "environment_key": "sk-ant-oat01-environment-key",
        "blaxel_api_key": "bl-api-key-value",
        "worker_image": "cma-worker:abc",
        "worker_memory_mb": 2048,
        "worker_max_age": "12h",
    }
    base.update(overrides)
    return Settings.model_validate(base)


def test_worker_sandbox_spec_expires_when_idle_and_at_the_optional_hard_cap() -> None:
    spec = worker_sandbox_spec(_settings(), SESSION)
    assert spec["name"] == worker_sandbox_name(SESSION)
    assert spec["image"] == "cma-worker:abc"
    assert spec["memory"] == 2048
    assert spec["labels"] == {
        "cma-role": "worker",
        "cma-session-id": SESSION,
        "cma-environment-id": "env_1",
    }
    assert spec["lifecycle"]["expiration_policies"] == [
        {"type": "ttl-idle", "value": "7d", "action": "delete"},
        {"type": "ttl-max-age", "value": "12h", "action": "delete"},
    ]
    uncapped = worker_sandbox_spec(_settings(worker_max_age=None, worker_idle_ttl="2h"), SESSION)
    assert uncapped["lifecycle"]["expiration_policies"] == [
        {"type": "ttl-idle", "value": "2h", "action": "delete"}
    ]
    assert "region" not in spec
    assert worker_sandbox_spec(_settings(worker_region="us-pdx-1"), SESSION)["region"] == "us-pdx-1"


def test_worker_sandbox_spec_carries_no_credential_and_no_env() -> None:
    text = json.dumps(worker_sandbox_spec(_settings(), SESSION))
    assert "sk-ant-oat01-environment-key" not in text
    assert "bl-api-key-value" not in text
    assert "envs" not in worker_sandbox_spec(_settings(), SESSION)


def test_proxy_secret_lives_only_in_the_network_proxy_routing_rule() -> None:
    settings = _settings(
        worker_proxy_secret="ghp_proxy_secret_value",
        worker_proxy_destinations=["api.github.com"],
    )
    spec = worker_sandbox_spec(settings, SESSION)
    rule = spec["network"]["proxy"]["routing"][0]
    assert rule["destinations"] == ["api.github.com"]
    assert rule["headers"] == {"Authorization": "Bearer {{SECRET:worker-proxy-secret}}"}
    assert rule["secrets"] == {"worker-proxy-secret": "ghp_proxy_secret_value"}
    assert "envs" not in spec
    # The SDK accepts the spec and keeps the secret in the proxy config it sends.
    config = SandboxCreateConfiguration.from_dict(spec)
    assert isinstance(config.network, SandboxNetwork)
    assert "ghp_proxy_secret_value" in json.dumps(config.network.to_dict())


def test_a_volume_carries_the_same_labels_as_its_sandbox() -> None:
    settings = _settings(worker_volume_size_mb=1024)
    volume = worker_volume_spec(settings, SESSION)
    assert volume["labels"] == worker_sandbox_spec(settings, SESSION)["labels"]
    assert volume["name"] == worker_volume_name(SESSION)


def test_per_session_volume_is_attached_when_configured() -> None:
    assert "volumes" not in worker_sandbox_spec(_settings(), SESSION)
    spec = worker_sandbox_spec(_settings(worker_volume_size_mb=1024), SESSION)
    assert spec["volumes"] == [
        {"name": worker_volume_name(SESSION), "mount_path": "/workspace", "read_only": False}
    ]


def _mapped(exc: BaseException) -> BlaxelError:
    error = as_blaxel_error(exc, "x")
    assert error is not None
    return error


def test_network_failures_and_5xx_are_transient_4xx_are_not() -> None:
    assert _mapped(httpx.ConnectError("refused")).transient
    server = BlaxelError("boom", transient=True, status=503)
    assert as_blaxel_error(server, "x") is server
    assert not _mapped(SdkBlaxelError("bad", status=400)).transient
    assert _mapped(SdkBlaxelError("bad", status=400)).status == 400
    assert _mapped(SdkBlaxelError("slow down", status=429)).transient
    assert _mapped(SdkBlaxelError("down", status=502)).transient


def test_a_404_maps_to_the_not_found_class() -> None:
    assert isinstance(_mapped(SdkBlaxelError("no such sandbox", status=404)), BlaxelNotFound)


def test_our_own_bugs_are_not_blaxel_errors_and_are_never_retried() -> None:
    calls = []

    async def buggy() -> None:
        calls.append(1)
        raise KeyError("a bug in our code")

    assert as_blaxel_error(KeyError("x"), "x") is None
    with pytest.raises(KeyError):
        asyncio.run(with_retries(buggy, action="t", retries=4, base_delay=0))
    assert len(calls) == 1


def test_with_retries_retries_transient_errors_then_succeeds() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("refused")
        return "ok"

    assert asyncio.run(with_retries(flaky, action="t", retries=4, base_delay=0)) == "ok"
    assert len(calls) == 3


def test_with_retries_gives_up_at_once_on_a_permanent_error() -> None:
    calls = []

    async def rejected() -> None:
        calls.append(1)
        raise SdkBlaxelError("refused", status=400)

    with pytest.raises(BlaxelError) as info:
        asyncio.run(with_retries(rejected, action="create", retries=4, base_delay=0))
    assert not info.value.transient
    assert len(calls) == 1


def test_with_retries_stops_after_the_retry_budget() -> None:
    calls = []

    async def down() -> None:
        calls.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(BlaxelError):
        asyncio.run(with_retries(down, action="t", retries=2, base_delay=0))
    assert len(calls) == 3


def test_worker_timing_comes_from_the_settings() -> None:
    default = worker_process_request(Settings(), {}, "work_1")
    assert (default["keep_alive"], default["timeout"]) == (True, 0)
    tuned = worker_process_request(
        Settings(worker_keep_alive=False, worker_max_lifetime_seconds=7200), {}, "work_1"
    )
    assert (tuned["keep_alive"], tuned["timeout"]) == (False, 7200)
