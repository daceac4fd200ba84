"""Providers travel through the state as "import this class": no path, no code, no keys."""

from __future__ import annotations

import base64
import pickletools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider

from infra.providers.agent import AgentProvider
from infra.providers.base import CmaProvider
from infra.providers.environment import EnvironmentProvider
from infra.providers.image import ImageProvider
from infra.providers.sandbox import SandboxProvider
from infra.providers.server import ServerProvider
from infra.providers.token import TokenProvider
from infra.providers.webhook import WebhookProvider

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = [
    EnvironmentProvider,
    AgentProvider,
    ImageProvider,
    SandboxProvider,
    WebhookProvider,
    ServerProvider,
    TokenProvider,
]
LOAD = """
import base64, sys
import dill
provider = dill.loads(base64.b64decode(sys.stdin.read()))
print(type(provider).__module__ + "." + type(provider).__name__)
print(sys.modules[type(provider).__module__].__file__)
"""


def _globals(blob: bytes) -> set[str]:
    """Every module.name the pickle imports."""
    found, strings = set(), []
    for op, arg, _pos in pickletools.genops(blob):
        if isinstance(arg, str):
            strings.append(arg)
        if op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]}.{strings[-1]}")
        elif op.name == "GLOBAL":
            found.add(str(arg).replace(" ", "."))
    return found


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_pickles_as_a_reference_to_its_class(provider: type[CmaProvider]) -> None:
    blob = base64.b64decode(serialize_provider(provider()))
    assert str(ROOT).encode() not in blob
    imported = _globals(blob)
    assert f"{provider.__module__}.{provider.__name__}" in imported
    # No function or code object travels by value.
    assert not any("_create_code" in name or "_create_function" in name for name in imported)


def test_state_written_in_one_checkout_loads_the_code_of_another(tmp_path: Path) -> None:
    other = tmp_path / "checkout-b"
    shutil.copytree(ROOT / "infra", other / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    blob = serialize_provider(SandboxProvider())
    done = subprocess.run(
        [sys.executable, "-c", LOAD],
        input=blob,
        capture_output=True,
        text=True,
        cwd=other,
        env={"PYTHONPATH": str(other), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    name, file = done.stdout.split()
    assert name == "infra.providers.sandbox.SandboxProvider"
    assert file.startswith(str(other))


def test_a_configured_provider_pickles_without_its_credentials() -> None:
    provider = EnvironmentProvider()
    config = {"cma:anthropicApiKey": "sk-ant-api03-never-in-state", "cma:model": "m"}
    provider.configure(ConfigureRequest(Config(config, "cma-blaxel")))
    assert provider.anthropic().api_key == "sk-ant-api03-never-in-state"
    blob = base64.b64decode(serialize_provider(provider))
    assert b"never-in-state" not in blob
    assert blob == base64.b64decode(serialize_provider(EnvironmentProvider()))


def test_credentials_come_from_config_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BL_API_KEY", "from-env")
    monkeypatch.setenv("BL_WORKSPACE", "ws-env")
    provider = SandboxProvider()
    provider.configure(ConfigureRequest(Config({"blaxel:apiKey": "from-config"}, "cma-blaxel")))
    creds = provider.blaxel()
    assert (creds.api_key, creds.workspace) == ("from-config", "ws-env")
    assert creds.base_url == "https://api.blaxel.ai/v0"
