"""Stack config validation: every error names its config key and what is allowed."""

from __future__ import annotations

import pytest

from infra.config import ConfigError, StackConfig, known_keys, load_stack_config

ENV = {"ANTHROPIC_API_KEY": "sk-ant-api03-x", "BL_API_KEY": "bl-key", "BL_WORKSPACE": "ws"}


def problems_for(values: dict[str, str], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_stack_config(values, ENV if env is None else env)
    return info.value.problems


def test_defaults_point_at_the_real_platforms() -> None:
    config = load_stack_config({}, ENV)
    assert config.anthropic_base_url == "https://api.anthropic.com"
    assert config.blaxel_base_url == "https://api.blaxel.ai/v0"
    assert config.webhook_mode == "console"


def test_credentials_come_from_the_environment_when_config_lacks_them() -> None:
    config = load_stack_config({}, ENV)
    assert config.anthropic_api_key.get_secret_value() == "sk-ant-api03-x"
    assert config.blaxel_api_key.get_secret_value() == "bl-key"
    assert config.blaxel_workspace == "ws"


def test_config_value_wins_over_the_environment() -> None:
    config = load_stack_config({"blaxel:workspace": "from-config"}, ENV)
    assert config.blaxel_workspace == "from-config"


def test_missing_credentials_name_the_key_and_the_env_var() -> None:
    problems = problems_for({}, env={})
    assert "cma:anthropicApiKey: required (or set ANTHROPIC_API_KEY)" in problems
    assert "blaxel:apiKey: required (or set BL_API_KEY)" in problems
    assert "blaxel:workspace: required (or set BL_WORKSPACE)" in problems


def test_webhook_mode_error_lists_the_allowed_modes() -> None:
    [problem] = problems_for({"cma:webhookMode": "email"})
    assert problem.startswith("cma:webhookMode: must be one of 'console' or 'api'")
    assert "'email'" in problem


def test_dispatch_mode_error_lists_the_allowed_modes() -> None:
    [problem] = problems_for({"cma:dispatchMode": "pull"})
    assert problem.startswith("cma:dispatchMode: must be one of 'webhook' or 'poll'")


def test_poll_mode_needs_no_signing_secret() -> None:
    config = load_stack_config({"cma:dispatchMode": "poll"}, ENV)
    assert config.secrets_missing == ["cma:environmentKey"]
    assert load_stack_config({}, ENV).secrets_missing == [
        "cma:environmentKey",
        "cma:webhookSigningSecret",
    ]


def test_base_url_must_be_http() -> None:
    [problem] = problems_for({"blaxel:baseUrl": "api.blaxel.ai"})
    assert problem.startswith("blaxel:baseUrl: must be an http(s) URL")


def test_base_url_loses_its_trailing_slash() -> None:
    config = load_stack_config({"cma:anthropicBaseUrl": "http://127.0.0.1:9000/"}, ENV)
    assert config.anthropic_base_url == "http://127.0.0.1:9000"


def test_sandbox_name_rules_are_spelled_out() -> None:
    [problem] = problems_for({"blaxel:orchestratorSandboxName": "Orchestrator_1"})
    assert problem.startswith("blaxel:orchestratorSandboxName: must be lowercase letters")


def test_sandbox_name_longer_than_49_characters_is_refused() -> None:
    [problem] = problems_for({"blaxel:orchestratorSandboxName": "a" * 50})
    assert problem.startswith("blaxel:orchestratorSandboxName:")


def test_environment_key_must_look_like_one_and_is_not_echoed() -> None:
    [problem] = problems_for({"cma:environmentKey": "hunter2-secret"})
    assert problem.startswith("cma:environmentKey: must be an environment key")
    assert "hunter2" not in problem


def test_signing_secret_must_be_a_whsec() -> None:
    [problem] = problems_for({"cma:webhookSigningSecret": "abc"})
    assert problem.startswith("cma:webhookSigningSecret: must be the webhook's signing secret")


def test_api_webhook_mode_is_refused_while_the_endpoint_api_has_no_session_events() -> None:
    [problem] = problems_for({"cma:webhookMode": "api"})
    assert problem.startswith("cma:webhookMode: 'api' is refused")
    assert "session" in problem and "'console'" in problem


def test_unknown_key_in_our_namespaces_is_reported_with_the_known_ones() -> None:
    [problem] = problems_for({"cma:enviromentKey": "x", "aws:region": "us-east-1"})
    assert problem.startswith("cma:enviromentKey: not a known key")
    assert "cma:environmentKey" in problem


def test_integer_settings_are_parsed_and_bounded() -> None:
    assert load_stack_config({"cma:maxConcurrentStarts": "3"}, ENV).max_concurrent_starts == 3
    [problem] = problems_for({"cma:maxConcurrentStarts": "0"})
    assert problem.startswith("cma:maxConcurrentStarts:")


def test_worker_max_age_must_be_a_duration() -> None:
    [problem] = problems_for({"blaxel:workerMaxAge": "forever"})
    assert problem.startswith("blaxel:workerMaxAge: must be a duration")


def test_region_must_be_a_resource_name() -> None:
    [problem] = problems_for({"blaxel:region": "US West"})
    assert problem.startswith("blaxel:region: must be a region name")


def test_secrets_missing_lists_both_until_set() -> None:
    config = load_stack_config({}, ENV)
    assert config.secrets_missing == ["cma:environmentKey", "cma:webhookSigningSecret"]
    done = load_stack_config(
        {"cma:environmentKey": "sk-ant-oat01-x", "cma:webhookSigningSecret": "whsec_y"}, ENV
    )
    assert done.secrets_missing == []


def test_worker_lifetimes_are_durations_of_at_least_five_minutes() -> None:
    config = load_stack_config({"blaxel:workerIdleTtl": "2d", "blaxel:workerMaxAge": "30d"}, ENV)
    assert (config.worker_idle_ttl, config.worker_max_age) == ("2d", "30d")
    [problem] = problems_for({"blaxel:workerIdleTtl": "1m"})
    assert problem.startswith("blaxel:workerIdleTtl: must be at least 5m")


def test_the_removed_idle_delete_key_names_what_replaces_it() -> None:
    [problem] = problems_for({"blaxel:workerIdleDeleteSeconds": "600"})
    assert problem.startswith("blaxel:workerIdleDeleteSeconds: removed")
    assert "blaxel:workerIdleTtl" in problem


def test_secrets_never_show_in_the_models_repr() -> None:
    config = load_stack_config({"cma:environmentKey": "sk-ant-oat01-topsecret"}, ENV)
    assert "topsecret" not in repr(config)


def test_contract_keys_are_all_known() -> None:
    contract = {
        "cma:anthropicBaseUrl", "cma:anthropicApiKey", "cma:environmentName",
        "cma:environmentKey", "cma:webhookMode", "cma:webhookSigningSecret", "cma:agentName",
        "cma:model", "blaxel:baseUrl", "blaxel:workspace", "blaxel:apiKey", "blaxel:region",
        "blaxel:orchestratorSandboxName",
    }  # fmt: skip
    assert contract <= known_keys()
    assert len(StackConfig.model_fields) == len(known_keys())


def test_import_ids_must_look_like_ids() -> None:
    [problem] = problems_for({"cma:importEnvironmentId": "agent_1"})
    assert problem.startswith("cma:importEnvironmentId:")
    config = load_stack_config(
        {"cma:importEnvironmentId": "env_01abc", "cma:importAgentId": "agent_01x"}, ENV
    )
    assert config.import_environment_id == "env_01abc"


def test_worker_max_age_below_blaxels_minimum_is_refused() -> None:
    [problem] = problems_for({"blaxel:workerMaxAge": "60s"})
    assert problem.startswith("blaxel:workerMaxAge: must be at least 5m")


def test_proxy_secret_needs_destinations() -> None:
    [problem] = problems_for({"blaxel:workerProxySecret": "s3cret"})
    assert problem.startswith(
        "blaxel:workerProxyDestinations: required with blaxel:workerProxySecret"
    )
    assert "s3cret" not in problem


def test_proxy_destinations_are_comma_separated_hosts() -> None:
    config = load_stack_config(
        {"blaxel:workerProxySecret": "s", "blaxel:workerProxyDestinations": "api.a.com, b.io,"}, ENV
    )
    assert config.proxy_destinations == ["api.a.com", "b.io"]


def test_proxy_header_format_must_hold_the_secret_placeholder() -> None:
    [problem] = problems_for({"blaxel:workerProxyHeaderFormat": "Bearer x"})
    assert problem.startswith("blaxel:workerProxyHeaderFormat: must contain '{secret}'")


def test_volume_mount_path_must_be_absolute() -> None:
    [problem] = problems_for({"blaxel:workerVolumeMountPath": "data"})
    assert problem.startswith("blaxel:workerVolumeMountPath: must be an absolute path")


def test_a_key_close_to_a_known_one_suggests_it() -> None:
    assert problems_for({"cma:modle": "m"}) == [
        "cma:modle: not a known key; did you mean cma:model?"
    ]


def test_default_names_are_scoped_to_project_and_stack() -> None:
    names = load_stack_config({}, ENV).names("cma-blaxel", "prod")
    assert names.orchestrator_sandbox == "cma-blaxel-prod-orch"
    assert names.environment == "cma-blaxel-prod-env"
    other = load_stack_config({}, ENV).names("cma-blaxel", "dev")
    assert set(names.model_dump().values()).isdisjoint(other.model_dump().values())


def test_long_stack_names_still_give_valid_distinct_sandbox_names() -> None:
    from infra.names import SANDBOX_NAME_PATTERN, scoped_name

    a = scoped_name("cma-blaxel", "x" * 60 + "a", "worker-img")
    b = scoped_name("cma-blaxel", "x" * 60 + "b", "worker-img")
    assert SANDBOX_NAME_PATTERN.fullmatch(a) and SANDBOX_NAME_PATTERN.fullmatch(b) and a != b
