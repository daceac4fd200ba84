"""Diffs are field-level, pure, and replace only for fields that force it."""

from __future__ import annotations

from typing import Any

from pulumi.runtime.rpc import UNKNOWN

from infra.providers.agent import AgentProvider
from infra.providers.base import changed_fields, check_with, field_diff
from infra.providers.environment import EnvironmentProps, EnvironmentProvider
from infra.providers.image import ImageProvider
from infra.providers.sandbox import SandboxProvider
from infra.providers.server import ServerProvider
from infra.providers.webhook import WebhookProvider

CREDS = {"blaxel_base_url": "http://b", "blaxel_workspace": "w", "blaxel_api_key": "k"}
SANDBOX = {**CREDS, "sandbox_name": "orch", "image": "img:1", "image_digest": "sha256:1"}


def _sandbox_olds(**extra: Any) -> dict[str, Any]:
    return {
        **SANDBOX,
        "region": None,
        "memory_mb": 4096,
        "port": 8000,
        "preview_name": "public",
        "labels": {},
        "url": "https://u",
        **extra,
    }


def test_changed_fields_lists_only_differences() -> None:
    assert changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3}, ["a", "b"]) == ["b"]


def test_field_diff_replaces_only_for_replace_fields() -> None:
    result = field_diff({"a": 1, "b": 1}, {"a": 2, "b": 2}, ["a", "b"], ["b"])
    assert result.changes is True and result.replaces == ["b"]


def test_identical_sandbox_inputs_show_no_change() -> None:
    result = SandboxProvider().diff("orch", _sandbox_olds(), dict(SANDBOX))
    assert result.changes is False and result.replaces == []


def test_new_image_updates_the_sandbox_in_place() -> None:
    news = {**SANDBOX, "image_digest": "sha256:2"}
    result = SandboxProvider().diff("orch", _sandbox_olds(), news)
    assert result.changes is True and result.replaces == []


def test_renaming_the_sandbox_replaces_it() -> None:
    result = SandboxProvider().diff("orch", _sandbox_olds(), {**SANDBOX, "sandbox_name": "other"})
    assert result.replaces == ["sandbox_name"]


def test_region_change_never_replaces_the_sandbox() -> None:
    result = SandboxProvider().diff("orch", _sandbox_olds(), {**SANDBOX, "region": "eu-1"})
    assert result.changes is True and result.replaces == []


def test_unchanged_image_digest_shows_no_diff() -> None:
    olds = {
        **CREDS,
        "image_name": "w",
        "factory": "f:g",
        "context_dir": "/c",
        "digest": "sha256:1",
        "memory_mb": 4096,
        "image": "w:latest",
    }
    news = {k: v for k, v in olds.items() if k != "image"}
    assert ImageProvider().diff("w", olds, news).changes is False
    assert ImageProvider().diff("w", olds, {**news, "digest": "sha256:2"}).replaces == []
    assert ImageProvider().diff("w", olds, {**news, "image_name": "x"}).replaces == ["image_name"]


def test_server_restarts_in_place_when_the_signing_secret_arrives() -> None:
    olds = {
        **CREDS,
        "sandbox_name": "orch",
        "url": "https://u",
        "settings": {"A": "1"},
        "secrets": {"ORCH_WEBHOOK_SIGNING_SECRET": ""},
        "image_digest": "d",
        "command": "python -m orchestrator_app",
        "working_dir": "/app",
        "revision": 1,
    }
    news = {**olds, "secrets": {"ORCH_WEBHOOK_SIGNING_SECRET": "whsec_x"}}
    del news["revision"]
    result = ServerProvider().diff("orch", olds, news)
    assert result.changes is True and result.replaces == []


def test_server_with_unknown_url_during_preview_shows_a_change() -> None:
    olds = {**CREDS, "sandbox_name": "orch", "url": "https://u", "settings": {}, "secrets": {}}
    result = ServerProvider().diff("orch", olds, {**olds, "url": UNKNOWN})
    assert result.changes is True


def test_agent_model_change_is_an_update_not_a_replacement() -> None:
    olds: dict[str, Any] = {
        "name": "a",
        "model": "m1",
        "system": None,
        "description": None,
        "tools": [{"type": "agent_toolset_20260401"}],
        "metadata": {},
        "anthropic_base_url": "u",
        "anthropic_api_key": "k",
    }
    news = {"name": "a", "model": "m2", "anthropic_base_url": "u", "anthropic_api_key": "k"}
    result = AgentProvider().diff("agent_1", olds, news)
    assert result.changes is True and result.replaces == []
    assert AgentProvider().diff("agent_1", olds, {**news, "model": "m1"}).changes is False


def test_environment_rename_is_in_place() -> None:
    olds: dict[str, Any] = {"name": "a", "description": None, "metadata": {}}
    assert EnvironmentProvider().diff("env_1", olds, {"name": "b"}).replaces == []


def test_webhook_mode_switch_replaces_the_endpoint() -> None:
    olds = {
        "mode": "console",
        "url": "https://u/webhook",
        "events": ["session.status_run_started"],
        "label": "cma-blaxel orchestrator",
        "signing_secret": "whsec_a",
    }
    news = {"mode": "api", "url": "https://u/webhook"}
    assert WebhookProvider().diff("console:x", olds, news).replaces == ["mode"]


def test_console_signing_secret_change_is_an_update() -> None:
    olds = {
        "mode": "console",
        "url": "https://u/webhook",
        "events": ["session.status_run_started"],
        "label": "cma-blaxel orchestrator",
        "signing_secret": "",
    }
    result = WebhookProvider().diff("console:x", olds, {**olds, "signing_secret": "whsec_b"})
    assert result.changes is True and result.replaces == []


def test_check_names_the_failing_property() -> None:
    result = check_with(EnvironmentProps, {"description": "d"})
    assert [f.property for f in result.failures] == ["name"]


def test_check_skips_inputs_unknown_during_preview() -> None:
    result = SandboxProvider().check({}, {**SANDBOX, "image": UNKNOWN})
    assert result.failures == []


def test_check_refuses_a_bad_sandbox_name() -> None:
    result = SandboxProvider().check({}, {**SANDBOX, "sandbox_name": "Bad_Name"})
    assert [f.property for f in result.failures] == ["sandbox_name"]


def test_check_skips_unknown_output_objects_nested_in_dicts() -> None:
    from pulumi.output import Unknown

    olds: dict[str, Any] = {}
    news = {**CREDS, "sandbox_name": "orch", "url": Unknown(), "settings": {"A": Unknown()}}
    assert ServerProvider().check(olds, news).failures == []


def test_server_restarts_when_the_sandbox_spec_changes() -> None:
    olds = {
        **CREDS,
        "sandbox_name": "orch",
        "url": "https://u",
        "settings": {},
        "secrets": {},
        "sandbox_spec_digest": "sha256:a",
    }
    result = ServerProvider().diff("orch", olds, {**olds, "sandbox_spec_digest": "sha256:b"})
    assert result.changes is True and result.replaces == []


def test_environment_inputs_left_to_defaults_show_no_change() -> None:
    olds: dict[str, Any] = {"name": "a", "description": None, "metadata": {}}
    assert EnvironmentProvider().diff("env_1", olds, {"name": "a"}).changes is False
