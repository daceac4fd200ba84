"""The secret scan itself: it finds a secret wherever a scenario could log one."""

from __future__ import annotations

import logging
import subprocess
import time

import httpx
import pytest

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from tests.faults.secret_scan import (
    LogSources,
    RecordCatcher,
    assert_no_secret_in,
    credential_values,
    leaks,
)

SECRET = "sk-ant-oat01-" + "x" * 40
OTHER_SECRET = "bl-" + "y" * 40


def test_a_secret_in_a_log_is_found_naming_the_log_and_only_its_prefix() -> None:
    found = leaks({"orchestrator log": f"token={SECRET}", "other": "clean"}, [SECRET])

    assert found == ["orchestrator log: sk-ant-oat…"]
    with pytest.raises(pytest.fail.Exception, match="orchestrator log") as caught:
        assert_no_secret_in({"orchestrator log": SECRET}, [SECRET])
    assert SECRET not in str(caught.value)


def test_a_signing_secrets_key_material_counts_without_its_prefix() -> None:
    secret = "whsec_" + "A" * 44

    assert leaks({"log": "key " + "A" * 44}, [secret]) == ["log: AAAAAAAAAA…"]


def test_short_values_are_not_taken_for_secrets() -> None:
    assert leaks({"log": "fallback false"}, ["false", ""]) == []


def test_credential_named_variables_are_secrets_and_the_rest_is_not() -> None:
    env = {
        "ORCH_STATUS_TOKEN": "t" * 20,
        "ORCH_BLAXEL_API_KEY": "b" * 20,
        "ORCH_WEBHOOK_SIGNING_SECRET_PREVIOUS": "w" * 20,
        "ORCH_WORKER_ENVIRONMENT_KEY_FALLBACK": "false",
        "ORCH_WORKER_IMAGE": "local/sandbox/cma-worker:abc",
    }

    assert sorted(credential_values(env)) == ["b" * 20, "t" * 20, "w" * 20]


def test_a_python_log_record_with_a_secret_is_caught() -> None:
    catcher = RecordCatcher()
    logger = logging.getLogger("tests.faults.scan")
    logger.addHandler(catcher)
    try:
        logger.warning("calling with key %s", SECRET)
    finally:
        logger.removeHandler(catcher)

    assert leaks(LogSources().logs(catcher.lines), [SECRET]) == ["python logging: sk-ant-oat…"]


def test_a_sandbox_process_printing_its_status_token_is_caught_after_the_sandbox_went() -> None:
    """The emulator's captured process output, and the secrets handed to a process's env,
    outlive the sandbox (a replaced orchestrator sandbox's server logged before it went)."""
    sources = LogSources()  # not the suite's: this leak is on purpose
    with EmulatorServer(timing=fast_timing()) as server:
        sources.watch_emulator(server)
        headers = {
            "X-Blaxel-Authorization": f"Bearer {server.config.blaxel_api_key}",
            "X-Blaxel-Workspace": server.config.blaxel_workspace,
        }
        body = {"metadata": {"name": "leaky"}, "spec": {}}
        httpx.post(server.config.blaxel_base_url + "/sandboxes", json=body, headers=headers)
        time.sleep(0.1)  # DEPLOYING → DEPLOYED
        request = {
            "command": 'echo "token: $ORCH_STATUS_TOKEN"',
            "env": {"ORCH_STATUS_TOKEN": "st-" + "s" * 30},
            "waitForCompletion": True,
        }
        url = server.emulator.blaxel.sandbox_url("leaky") + "/process"
        ran = httpx.post(url, json=request, headers=headers, timeout=30)
        httpx.delete(server.config.blaxel_base_url + "/sandboxes/leaky", headers=headers)

        found = leaks(sources.logs([]), sources.secrets())

    assert ran.status_code == 200
    assert [f for f in found if f.startswith("sandbox leaky")] == [
        f"sandbox leaky process {ran.json()['name']} (#0) stdout: st-sssssss…"
    ]


def test_every_credential_the_emulator_issues_is_a_secret_even_after_a_reset() -> None:
    sources = LogSources()
    with EmulatorServer(timing=fast_timing()) as server:
        sources.watch_emulator(server)
        environment = server.emulator.anthropic.create_environment(
            {"name": "e", "config": {"type": "self_hosted"}}
        )
        key = server.emulator.anthropic.mint_environment_key(environment["id"])
        hook = server.emulator.anthropic.register_workspace_webhook(
            "http://127.0.0.1:9/webhook", ["session.status_run_started"]
        )
        server.emulator.reset()

        secrets = sources.secrets()

    assert {key, hook["secret"], server.config.anthropic_api_key} <= secrets


class _Project:
    """Stands in for scripts.engine.PulumiProject: echoes each command as the engine would."""

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        said = "secret-output " + SECRET if "--show-secrets" in args else "updated"
        return subprocess.CompletedProcess(list(args), 0, said, "")

    def set_config(self, key: str, value: str, secret: bool = False) -> None:
        raise AssertionError("replaced by the recorder")

    def set_configs(self, plain: dict[str, str], secret: dict[str, str]) -> None:
        self.run("config", "set-all")  # as PulumiProject does: through `run`


def test_the_engine_recorder_keeps_outputs_and_secret_config_values_not_arguments() -> None:
    sources, project = LogSources(), _Project()
    sources.watch_engine(project)

    project.set_config("cma:environmentKey", SECRET, secret=True)
    project.set_configs(plain={"blaxel:workspace": "w"}, secret={"blaxel:apiKey": OTHER_SECRET})
    project.run("stack", "output", "--json", "--show-secrets")  # asked for: not a log
    project.run("up", "--yes")

    assert sources.secrets() == {SECRET, OTHER_SECRET}
    assert leaks(sources.logs([]), sources.secrets()) == []
    assert "updated" in sources.logs([])["engine output #0"]
