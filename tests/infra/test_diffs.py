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


def test_credentials_of_old_state_are_neither_diffed_nor_kept_as_inputs() -> None:
    """State written by the previous version holds keys as inputs: no diff, and check drops
    them so they leave the state's inputs."""
    result = SandboxProvider().diff("orch", _sandbox_olds(), dict(SANDBOX))
    assert result.changes is False
    rotated = {**SANDBOX, "blaxel_api_key": "rotated"}
    assert SandboxProvider().diff("orch", _sandbox_olds(), rotated).changes is False
    checked = SandboxProvider().check({}, dict(SANDBOX)).inputs
    assert not set(CREDS) & set(checked)


def test_no_provider_diffs_a_credential_field() -> None:
    from infra.providers.base import LEGACY_CREDENTIAL_FIELDS
    from infra.providers.token import TokenProvider

    providers = (
        AgentProvider,
        EnvironmentProvider,
        ImageProvider,
        SandboxProvider,
        ServerProvider,
        WebhookProvider,
        TokenProvider,
    )
    for provider in providers:
        assert not set(provider.diffed_fields()) & set(LEGACY_CREDENTIAL_FIELDS), provider


def test_sandbox_changes_other_than_its_name_are_in_place() -> None:
    for field, value in {
        "image": "img:2",
        "memory_mb": 2048,
        "port": 9000,
        "labels": {"team": "x"},
        "preview_name": "other",
    }.items():
        result = SandboxProvider().diff("orch", _sandbox_olds(), {**SANDBOX, field: value})
        assert result.changes is True and result.replaces == [], field
    renamed = SandboxProvider().diff("orch", _sandbox_olds(), {**SANDBOX, "sandbox_name": "o2"})
    assert renamed.replaces == ["sandbox_name"]


def test_every_replacement_deletes_first() -> None:
    """Objects are found by unique name: create-before-delete would adopt, then delete, it."""
    renamed = SandboxProvider().diff("orch", _sandbox_olds(), {**SANDBOX, "sandbox_name": "o2"})
    assert renamed.delete_before_replace is True


def test_server_is_never_replaced_by_a_settings_change() -> None:
    olds = {"sandbox_name": "orch", "url": "https://u", "settings": {"A": "1"}, "secrets": {}}
    for news in (
        {**olds, "settings": {"A": "2"}},
        {**olds, "sandbox_name": "orch2"},
        {**olds, "image_digest": "sha256:x"},
    ):
        result = ServerProvider().diff("orch", olds, news)
        assert result.changes is True and result.replaces == []


def test_ownership_change_is_an_in_place_update() -> None:
    news = {**SANDBOX, "owner": {"project": "p", "stack": "s"}}
    result = SandboxProvider().diff("orch", _sandbox_olds(), news)
    assert result.changes is True and result.replaces == []
