from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator_app.settings import Settings, duration_seconds


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ORCH_") or name == "PORT":
            monkeypatch.delenv(name)


def test_settings_are_read_from_orch_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ENVIRONMENT_ID", "env_123")
    monkeypatch.setenv("ORCH_ENVIRONMENT_KEY", "sk-ant-oat01-secret")
    monkeypatch.setenv("ORCH_BLAXEL_BASE_URL", "http://127.0.0.1:5000/blaxel/v0")
    monkeypatch.setenv("ORCH_MAX_CONCURRENT_STARTS", "3")
    settings = Settings.from_env()
    assert settings.environment_id == "env_123"
    assert settings.environment_key is not None
    assert settings.environment_key.get_secret_value() == "sk-ant-oat01-secret"
    assert settings.blaxel_url == "http://127.0.0.1:5000/blaxel/v0"
    assert settings.max_concurrent_starts == 3


def test_secrets_never_appear_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ENVIRONMENT_KEY", "sk-ant-oat01-secret")
    monkeypatch.setenv("ORCH_BLAXEL_API_KEY", "bl-secret-value")
    text = repr(Settings.from_env()) + str(Settings.from_env().model_dump())
    assert "sk-ant-oat01-secret" not in text
    assert "bl-secret-value" not in text


def test_settings_are_not_read_at_import_time(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Settings.from_env()
    monkeypatch.setenv("ORCH_ENVIRONMENT_ID", "env_later")
    assert first.environment_id is None
    assert Settings.from_env().environment_id == "env_later"


def test_port_defaults_to_port_then_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().port == 8000
    monkeypatch.setenv("PORT", "4321")
    assert Settings.from_env().port == 4321
    monkeypatch.setenv("ORCH_PORT", "9999")
    assert Settings.from_env().port == 9999


def test_missing_names_every_unset_requirement() -> None:
    problems = Settings.from_env().missing()
    assert "environment key not set (ORCH_ENVIRONMENT_KEY)" in problems
    assert "webhook signing secret not set (ORCH_WEBHOOK_SIGNING_SECRET)" in problems
    assert "Blaxel API key not set (ORCH_BLAXEL_API_KEY)" in problems
    assert len(problems) == 6


def test_an_empty_secret_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ENVIRONMENT_KEY", "")
    settings = Settings.from_env()
    assert settings.environment_key is None
    assert "environment key not set (ORCH_ENVIRONMENT_KEY)" in settings.missing()


def test_a_bad_endpoint_is_rejected_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ANTHROPIC_BASE_URL", "not a url")
    with pytest.raises(ValidationError, match="anthropic_base_url"):
        Settings.from_env()


def test_worker_max_age_must_be_a_duration_of_at_least_5m(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_WORKER_MAX_AGE", "2m")
    with pytest.raises(ValidationError, match="worker_max_age"):
        Settings.from_env()
    monkeypatch.setenv("ORCH_WORKER_MAX_AGE", "soon")
    with pytest.raises(ValidationError, match="worker_max_age"):
        Settings.from_env()


def test_duration_seconds_reads_blaxel_durations() -> None:
    assert duration_seconds("30m") == 1800
    assert duration_seconds("7d") == 7 * 86400
    with pytest.raises(ValueError):
        duration_seconds("7 days")


def test_secret_values_lists_what_the_redactor_must_hide() -> None:
    settings = Settings.model_validate(
        {"environment_key": "sk-ant-oat01-abc", "blaxel_api_key": "bl-key-1234"}
    )
    assert sorted(settings.secret_values()) == ["bl-key-1234", "sk-ant-oat01-abc"]


def test_the_proxy_header_format_must_place_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_WORKER_PROXY_HEADER_FORMAT", "token {other}")
    with pytest.raises(ValidationError, match="worker_proxy_header_format"):
        Settings.from_env()
    monkeypatch.setenv("ORCH_WORKER_PROXY_HEADER_FORMAT", "token")
    with pytest.raises(ValidationError, match="worker_proxy_header_format"):
        Settings.from_env()
    monkeypatch.setenv("ORCH_WORKER_PROXY_HEADER_FORMAT", "token {secret}")
    assert Settings.from_env().worker_proxy_header_format == "token {secret}"


def test_proxy_destinations_are_read_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_WORKER_PROXY_DESTINATIONS", '["api.github.com", "pypi.org"]')
    assert Settings.from_env().worker_proxy_destinations == ["api.github.com", "pypi.org"]


def test_the_volume_mount_path_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_WORKER_VOLUME_MOUNT_PATH", "workspace")
    with pytest.raises(ValidationError, match="worker_volume_mount_path"):
        Settings.from_env()


def test_dispatch_is_by_webhook_unless_poll_mode_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env()
    assert (settings.dispatch_mode, settings.poll_block_ms) == ("webhook", 999)
    monkeypatch.setenv("ORCH_DISPATCH_MODE", "poll")
    monkeypatch.setenv("ORCH_POLL_BLOCK_MS", "250")
    settings = Settings.from_env()
    assert (settings.dispatch_mode, settings.poll_block_ms) == ("poll", 250)


@pytest.mark.parametrize("mode", ["Poll", "websocket", ""])
def test_an_unknown_dispatch_mode_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("ORCH_DISPATCH_MODE", mode)
    with pytest.raises(ValidationError, match="dispatch_mode"):
        Settings.from_env()


@pytest.mark.parametrize("block_ms", ["0", "1000", "-5", "soon"])
def test_a_poll_block_outside_the_apis_1_to_999_ms_is_refused(
    monkeypatch: pytest.MonkeyPatch, block_ms: str
) -> None:
    monkeypatch.setenv("ORCH_POLL_BLOCK_MS", block_ms)
    with pytest.raises(ValidationError, match="poll_block_ms"):
        Settings.from_env()


def test_poll_mode_needs_no_signing_secret_webhook_mode_does() -> None:
    signing = "webhook signing secret not set (ORCH_WEBHOOK_SIGNING_SECRET)"
    assert signing in Settings.model_validate({"dispatch_mode": "webhook"}).missing()
    poll = Settings.model_validate({"dispatch_mode": "poll"}).missing()
    assert signing not in poll
    assert "environment key not set (ORCH_ENVIRONMENT_KEY)" in poll
    assert len(poll) == 5
