"""Providers travel through the state as "import this class", loadable from any directory."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from infra.providers.agent import AgentProvider
from infra.providers.environment import EnvironmentProvider
from infra.providers.image import ImageProvider
from infra.providers.sandbox import SandboxProvider
from infra.providers.server import ServerProvider
from infra.providers.webhook import WebhookProvider

LOAD = """
import base64, sys
sys.path = [p for p in sys.path if p not in ("", {root!r})]
import dill
provider = dill.loads(base64.b64decode(sys.stdin.read()))
print(type(provider).__module__ + "." + type(provider).__name__)
"""


@pytest.mark.parametrize(
    "provider",
    [
        EnvironmentProvider,
        AgentProvider,
        ImageProvider,
        SandboxProvider,
        WebhookProvider,
        ServerProvider,
    ],
)
def test_provider_unpickles_where_the_repository_is_not_importable(
    provider: type, tmp_path: Path
) -> None:
    from pulumi.dynamic.dynamic import serialize_provider

    root = str(Path(__file__).resolve().parents[2])
    blob = serialize_provider(provider())
    done = subprocess.run(
        [sys.executable, "-c", LOAD.format(root=root)],
        input=blob,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert done.stdout.strip() == f"{provider.__module__}.{provider.__name__}"


def test_pickled_provider_holds_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi.dynamic.dynamic import serialize_provider

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-never-in-state")
    blob = base64.b64decode(serialize_provider(EnvironmentProvider()))
    assert b"never-in-state" not in blob
