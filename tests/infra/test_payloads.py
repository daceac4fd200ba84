"""Request bodies are pure functions of the resource inputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from infra.components.orchestrator import (
    OrchestratorArgs,
    WorkerSettings,
    server_secrets,
    server_settings,
)
from infra.components.stack import next_steps
from infra.names import Owner
from infra.providers import agent, environment, sandbox, server, webhook
from infra.providers.agent import live_model_id
from infra.providers.environment import environment_needs_update
from infra.providers.sandbox import DIGEST_LABEL, find_preview, normalise_url, preview_url
from infra.providers.server import process_name
from infra.providers.webhook import webhook_url


# The pure functions take the validated model; these build it from plain inputs.
def environment_payload(props: dict[str, Any]) -> dict[str, Any]:
    return environment.environment_payload(environment.EnvironmentProps.model_validate(props))


def agent_payload(props: dict[str, Any]) -> dict[str, Any]:
    return agent.agent_payload(agent.AgentProps.model_validate(props))


def sandbox_payload(props: dict[str, Any]) -> dict[str, Any]:
    return sandbox.sandbox_payload(sandbox.SandboxProps.model_validate(props))


def preview_payload(props: dict[str, Any]) -> dict[str, Any]:
    return sandbox.preview_payload(sandbox.SandboxProps.model_validate(props))


def webhook_payload(props: dict[str, Any]) -> dict[str, Any]:
    return webhook.webhook_payload(webhook.WebhookProps.model_validate(props))


def process_payload(props: dict[str, Any], revision: int) -> dict[str, Any]:
    return server.process_payload(server.ServerProps.model_validate(props), revision)


def process_env(props: dict[str, Any]) -> dict[str, str]:
    return server.process_env(server.ServerProps.model_validate(props))


def expects_ready(props: dict[str, Any]) -> bool:
    return server.expects_ready(server.ServerProps.model_validate(props))


SANDBOX = {
    "sandbox_name": "cma-orchestrator",
    "image": "cma-orch:latest",
    "image_digest": "sha256:abcdef0123456789",
}
SERVER = {
    "sandbox_name": "cma-orchestrator",
    "url": "http://127.0.0.1:1/p",
    "settings": {"ORCH_ENVIRONMENT_ID": "env_1", "ORCH_PORT": "8080"},
    "secrets": {"ORCH_ENVIRONMENT_KEY": "sk-ant-oat01-k", "ORCH_WEBHOOK_SIGNING_SECRET": ""},
}


def test_environment_payload_is_always_self_hosted() -> None:
    body = environment_payload({"name": "env", "metadata": {"a": "b"}, "config": {"type": "cloud"}})
    assert body == {"name": "env", "config": {"type": "self_hosted"}, "metadata": {"a": "b"}}


def test_environment_payload_carries_a_description_when_given() -> None:
    assert environment_payload({"name": "e", "description": "d"})["description"] == "d"


def test_adopted_environment_is_updated_only_when_it_differs() -> None:
    payload = environment_payload({"name": "e", "description": "d"})
    live = {"id": "env_1", "name": "e", "description": "d", "metadata": {}}
    assert not environment_needs_update(live, payload)
    assert environment_needs_update({**live, "description": "old"}, payload)


def test_agent_payload_defaults_to_the_agent_toolset_and_sonnet() -> None:
    body = agent_payload({"name": "a"})
    assert body["model"] == "claude-sonnet-4-6"
    assert body["tools"] == [{"type": "agent_toolset_20260401"}]
    assert "system" not in body and "version" not in body


def test_agent_model_reads_back_from_a_model_config_object() -> None:
    assert live_model_id({"model": {"id": "claude-x", "speed": "standard"}}) == "claude-x"
    assert live_model_id({"model": "claude-y"}) == "claude-y"


def test_sandbox_payload_has_no_expiration_policy() -> None:
    body = sandbox_payload(SANDBOX)
    assert body["spec"]["lifecycle"] == {"expirationPolicies": []}
    assert "ttl" not in body["spec"]["runtime"]


def test_sandbox_payload_exposes_one_http_port_and_labels_the_digest() -> None:
    body = sandbox_payload({**SANDBOX, "port": 9000})
    assert body["spec"]["runtime"]["ports"] == [
        {"name": "http", "target": 9000, "protocol": "HTTP"}
    ]
    assert body["metadata"]["labels"][DIGEST_LABEL] == "abcdef012345"


def test_sandbox_payload_sets_region_only_when_given() -> None:
    assert "region" not in sandbox_payload(SANDBOX)["spec"]
    assert sandbox_payload({**SANDBOX, "region": "us-pdx-1"})["spec"]["region"] == "us-pdx-1"


def test_preview_is_public_on_the_sandbox_port() -> None:
    body = preview_payload({**SANDBOX, "port": 8081})
    assert body == {"metadata": {"name": "public"}, "spec": {"port": 8081, "public": True}}


@pytest.mark.parametrize(
    ("answered", "absolute"),
    [
        ("h.us-pdx-1.preview.bl.run", "https://h.us-pdx-1.preview.bl.run"),
        ("//h.us-pdx-1.preview.bl.run/", "https://h.us-pdx-1.preview.bl.run"),
        ("https://h.us-pdx-1.preview.bl.run/", "https://h.us-pdx-1.preview.bl.run"),
        ("http://h.example/p/", "http://h.example/p"),
        ("127.0.0.1:5/blaxel/previews/o/p", "http://127.0.0.1:5/blaxel/previews/o/p"),
        ("//127.0.0.1:5/x", "http://127.0.0.1:5/x"),
        ("localhost:7/x", "http://localhost:7/x"),
    ],
)
def test_every_form_of_preview_url_is_normalised(answered: str, absolute: str) -> None:
    assert normalise_url(answered) == absolute


def test_preview_url_gets_a_scheme_and_loses_its_slash() -> None:
    assert normalise_url("abc.preview.bl.run/") == "https://abc.preview.bl.run"
    assert normalise_url("http://127.0.0.1:5/x/") == "http://127.0.0.1:5/x"
    assert preview_url({"spec": {"url": "h.example"}}) == "https://h.example"
    assert preview_url({"spec": {}}) is None


def test_find_preview_by_name() -> None:
    previews = [{"metadata": {"name": "other"}}, {"metadata": {"name": "public"}}]
    assert find_preview(previews, "public") == previews[1]
    assert find_preview(previews, "missing") is None


def test_webhook_url_is_the_preview_plus_webhook() -> None:
    assert webhook_url("https://x.run/") == "https://x.run/webhook"


def test_webhook_payload_subscribes_to_run_started() -> None:
    body = webhook_payload({"mode": "api", "url": "https://x/webhook"})
    assert body["enabled_events"] == ["session.status_run_started"]
    assert body["url"] == "https://x/webhook"


def test_process_payload_runs_the_orchestrator_detached_without_time_limit() -> None:
    body = process_payload(SERVER, 3)
    assert body["command"] == "python -m orchestrator_app"
    assert body["workingDir"] == "/app"
    assert body["name"] == process_name(3) == "orchestrator-r3"
    assert body["waitForCompletion"] is False and body["keepAlive"] is True
    assert body["timeout"] == 0
    # Every crash is rerun by the platform, however many came before.
    assert body["restartOnFailure"] is True and body["maxRestarts"] < 0


def test_process_env_leaves_out_secrets_that_are_not_set() -> None:
    env = process_env(SERVER)
    assert env["ORCH_ENVIRONMENT_KEY"] == "sk-ant-oat01-k"
    assert "ORCH_WEBHOOK_SIGNING_SECRET" not in env
    assert env["ORCH_ENVIRONMENT_ID"] == "env_1"


def test_ready_is_expected_only_with_both_secrets() -> None:
    assert not expects_ready(SERVER)
    both = {**SERVER, "secrets": {"ORCH_ENVIRONMENT_KEY": "k", "ORCH_WEBHOOK_SIGNING_SECRET": "w"}}
    assert expects_ready(both)


def test_poll_mode_expects_ready_with_the_environment_key_alone() -> None:
    settings: dict[str, Any] = dict(SERVER["settings"])  # type: ignore[arg-type]
    poll = {**SERVER, "settings": {**settings, "ORCH_DISPATCH_MODE": "poll"}}
    assert expects_ready(poll)  # SERVER holds the environment key, no signing secret
    assert not expects_ready({**poll, "secrets": {}})


def test_the_state_volume_is_made_in_the_sandboxs_region_with_its_owners_mark() -> None:
    props = sandbox.SandboxProps(
        sandbox_name="orch",
        image="img",
        region="eu-lon-1",
        state_volume="orch-state",
        labels={"team": "a"},
        owner=Owner("p", "prod"),
    )
    body = sandbox.volume_payload(props)
    assert body["metadata"]["name"] == "orch-state"
    assert body["metadata"]["labels"] == {"team": "a", "cma-project": "p", "cma-stack": "prod"}
    assert body["spec"] == {"size": 512, "region": "eu-lon-1"}
    spec = sandbox.sandbox_spec(props)
    assert spec["volumes"] == [{"name": "orch-state", "mountPath": "/app/state", "readOnly": False}]


def test_refresh_reads_the_live_sandbox_without_our_marks_as_its_labels() -> None:
    props = sandbox.SandboxProps(
        sandbox_name="orch",
        image="img:1",
        image_digest="sha256:abc",
        state_volume="orch-state",
        labels={"team": "a"},
        owner=Owner("p", "prod"),
    )
    live = {
        "metadata": {"labels": {"team": "b", "cma-project": "p", "cma-stack": "prod"}},
        "spec": {
            "runtime": {"image": "img:2", "memory": 2048, "ports": [{"target": 8000}]},
            "volumes": [{"name": "other", "mountPath": "/app/state"}],
        },
    }
    found = sandbox.live_props(props, live, [])
    assert found.labels == {"team": "b"}  # drift shown; the ownership mark is not a label
    assert found.owner == Owner("p", "prod")
    assert (found.image, found.memory_mb, found.state_volume) == ("img:2", 2048, "other")
    assert found.preview_name == ""  # no preview: `up` makes it again


def test_a_public_preview_shows_as_drift_only_where_none_is_declared() -> None:
    props = sandbox.SandboxProps(sandbox_name="orch", image="img", preview_name="")
    public = {"metadata": {"name": "leak"}, "spec": {"port": 8000, "public": True}}
    private = {"metadata": {"name": "p"}, "spec": {"port": 8000, "public": False}}
    assert sandbox.live_preview_name(props, [private]) == ""
    # Poll mode declares none: a public one made behind our back is drift `up` takes down.
    assert sandbox.live_preview_name(props, [private, public]) == "leak"
    declared = props.model_copy(update={"preview_name": "public"})
    assert sandbox.live_preview_name(declared, [public]) == ""  # ours is gone


def _orchestrator_args(**worker: object) -> OrchestratorArgs:
    return OrchestratorArgs(
        anthropic_base_url="http://an",
        blaxel_base_url="http://bl/v0",
        blaxel_workspace="ws",
        blaxel_api_key="key",
        sandbox_name="cma-orchestrator",
        owner=Owner("cma-blaxel", "test"),
        image="i",
        image_digest="d",
        environment_id="env_1",
        worker_image="w",
        environment_key="",
        region="us-pdx-1",
        worker=WorkerSettings(**worker),  # type: ignore[arg-type]
    )


def test_server_settings_follow_the_contract_and_hold_no_secret() -> None:
    settings = server_settings(_orchestrator_args(max_concurrent_starts=3), "env_1", "img:1")
    assert settings["ORCH_ENVIRONMENT_ID"] == "env_1"
    assert settings["ORCH_WORKER_IMAGE"] == "img:1"
    assert settings["ORCH_MAX_CONCURRENT_STARTS"] == "3"
    assert settings["ORCH_BLAXEL_BASE_URL"] == "http://bl/v0"
    assert settings["ORCH_WORKER_REGION"] == "us-pdx-1"
    assert not {"ORCH_ENVIRONMENT_KEY", "ORCH_WEBHOOK_SIGNING_SECRET", "ORCH_BLAXEL_API_KEY"} & set(
        settings
    )


def test_server_secrets_are_the_three_secret_settings() -> None:
    assert server_secrets("k", "", "b") == {
        "ORCH_ENVIRONMENT_KEY": "k",
        "ORCH_WEBHOOK_SIGNING_SECRET": "",
        "ORCH_BLAXEL_API_KEY": "b",
    }


def test_next_steps_name_the_environment_and_the_url() -> None:
    steps = next_steps(
        ["cma:environmentKey", "cma:webhookSigningSecret"], "env_9", "https://u/webhook", "console"
    )
    assert "env_9" in steps[0] and "pulumi config set --secret cma:environmentKey" in steps[0]
    assert "https://u/webhook" in steps[1] and "cma:webhookSigningSecret" in steps[1]


def test_next_steps_is_empty_with_all_secrets_set() -> None:
    assert next_steps([], "env_9", "https://u/webhook", "console") == []


def test_spec_digest_follows_the_sandbox_payload() -> None:
    from infra.providers.sandbox import SandboxProps, spec_digest

    base = SandboxProps.model_validate(SANDBOX)
    assert spec_digest(base) == spec_digest(SandboxProps.model_validate(dict(SANDBOX)))
    assert spec_digest(base) != spec_digest(base.model_copy(update={"memory_mb": 1024}))


def test_labels_and_owner_marks_do_not_move_the_spec_digest() -> None:
    """A label-only update redeploys nothing (emulator/blaxel/models.py update_sandbox), so
    the server is not restarted for one."""
    from infra.providers.sandbox import SandboxProps, spec_digest

    base = SandboxProps.model_validate(SANDBOX)
    marked = base.model_copy(update={"labels": {"x": "y"}, "owner": Owner("p", "s")})
    assert spec_digest(base) == spec_digest(marked)


def test_owner_mark_is_in_every_payload() -> None:
    owner = {"project": "cma-blaxel", "stack": "prod"}
    mark = {"cma-project": "cma-blaxel", "cma-stack": "prod"}
    assert (
        sandbox_payload({**SANDBOX, "owner": owner})["metadata"]["labels"].items() >= mark.items()
    )
    assert environment_payload({"name": "e", "owner": owner})["metadata"].items() >= mark.items()
    assert agent_payload({"name": "a", "owner": owner})["metadata"].items() >= mark.items()


def test_worker_features_become_settings_only_when_set() -> None:
    plain = server_settings(_orchestrator_args(), "env_1", "img")
    assert not any(k.startswith(("ORCH_WORKER_PROXY", "ORCH_WORKER_VOLUME")) for k in plain)
    featured = server_settings(
        _orchestrator_args(proxy_destinations=["api.a.com"], volume_size_mb=512), "env_1", "img"
    )
    assert featured["ORCH_WORKER_PROXY_DESTINATIONS"] == '["api.a.com"]'
    assert featured["ORCH_WORKER_VOLUME_SIZE_MB"] == "512"


def test_status_token_and_previous_signing_secret_are_secret_settings_when_set() -> None:
    secrets = server_secrets("k", "w", "b", "", "tok", "whsec_old")
    assert secrets["ORCH_STATUS_TOKEN"] == "tok"
    assert secrets["ORCH_WEBHOOK_SIGNING_SECRET_PREVIOUS"] == "whsec_old"
    assert "ORCH_WEBHOOK_SIGNING_SECRET_PREVIOUS" not in server_secrets("k", "w", "b", "", "t")


def test_proxy_secret_is_a_secret_setting_only_when_set() -> None:
    assert "ORCH_WORKER_PROXY_SECRET" not in server_secrets("k", "w", "b")
    assert server_secrets("k", "w", "b", "p")["ORCH_WORKER_PROXY_SECRET"] == "p"


def test_a_private_or_moved_preview_does_not_match() -> None:
    from infra.providers.sandbox import SandboxProps, preview_matches

    props = SandboxProps.model_validate(SANDBOX)
    assert preview_matches({"spec": {"port": 8000, "public": True}}, props)
    assert not preview_matches({"spec": {"port": 8000, "public": False}}, props)
    assert not preview_matches({"spec": {"port": 9000, "public": True}}, props)


# Settings the app has that the stack leaves to the app's defaults, on purpose (ORCH_PORT: the
# platform's PORT wins; the rest are tuning knobs with sane defaults).
LEFT_TO_THE_APP = {
    "host",
    "port",
    "log_level",
    "empty_drain_retries",
    "empty_drain_retry_seconds",
    "janitor_interval_seconds",
    "retry_base_seconds",
    "sandbox_ready_timeout_seconds",
    "start_retries",
    "webhook_max_body_bytes",
    "worker_workdir",
    "poll_block_ms",  # the API's longest wait (999 ms) is the right one
}


def test_the_programs_orch_keys_are_exactly_the_orchestrator_settings() -> None:
    from orchestrator_app.settings import Settings

    args = _orchestrator_args(
        proxy_destinations=["a.com"],
        proxy_header="X-K",
        proxy_header_format="Bearer {secret}",
        volume_size_mb=1,
        volume_mount_path="/v",
        idle_ttl="1d",
        max_age="2d",
        max_idle_seconds=30.0,
        keep_alive=False,
        max_lifetime_seconds=600,
    )
    # The union over both dispatch modes (ORCH_DISPATCH_MODE is passed in poll mode only).
    settings = {
        **server_settings(args, "env_1", "img"),
        **server_settings(dataclasses.replace(args, dispatch_mode="poll"), "env_1", "img"),
    }
    secrets = server_secrets("k", "w", "b", "p", "t", "whsec_old")
    passed = {k for k in {*settings, *secrets} if k.startswith("ORCH_")}
    fields = {f"ORCH_{name.upper()}" for name in Settings.model_fields}
    assert passed == fields - {f"ORCH_{n.upper()}" for n in LEFT_TO_THE_APP}


def test_the_program_puts_the_orchestrator_in_the_stacks_dispatch_mode() -> None:
    from orchestrator_app.settings import Settings

    for mode in ("webhook", "poll"):
        args = dataclasses.replace(_orchestrator_args(), dispatch_mode=mode)
        env = {k: v for k, v in server_settings(args, "env_1", "img").items() if "ORCH_" in k}
        read = Settings.model_validate({k.removeprefix("ORCH_").lower(): v for k, v in env.items()})
        assert read.dispatch_mode == mode


def test_worker_lifecycle_settings_reach_the_orchestrator_and_unset_ones_stay_its_defaults() -> (
    None
):
    from orchestrator_app.settings import Settings

    unset = server_settings(_orchestrator_args(), "env_1", "img")
    assert "ORCH_WORKER_IDLE_TTL" not in unset and "ORCH_WORKER_MAX_AGE" not in unset
    assert unset["ORCH_WORKER_ENVIRONMENT_KEY_FALLBACK"] == "false"
    passed = server_settings(
        _orchestrator_args(idle_ttl="1d", max_age="2d", keep_alive=False, max_idle_seconds=5.0),
        "env_1",
        "img",
    )
    env = {k: v for k, v in passed.items() if k.startswith("ORCH_")}
    read = Settings.model_validate({k.removeprefix("ORCH_").lower(): v for k, v in env.items()})
    assert (read.worker_idle_ttl, read.worker_max_age) == ("1d", "2d")
    assert read.worker_keep_alive is False and read.worker_max_idle_seconds == 5.0


def test_custom_timeouts_bound_the_provider_waits() -> None:
    import pulumi

    from infra.components.orchestrator import _timeout_input, parse_duration

    assert parse_duration("90s") == 90 and parse_duration("1h30m") == 5400
    assert parse_duration("soon") is None and parse_duration("5") is None
    opts = pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create="2m", update="45s"))
    assert _timeout_input("deploy_timeout_s", opts, "create") == {"deploy_timeout_s": 120}
    assert _timeout_input("health_timeout_s", opts, "update") == {"health_timeout_s": 45}
    assert _timeout_input("health_timeout_s", None, "update") == {}
