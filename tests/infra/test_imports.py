"""The dynamic provider host of a no-op preview (check/diff only) imports no platform SDK
(the providers import their clients where they call them) and does not build the stack's
config model (infra.config), which only the program reads."""

from __future__ import annotations

import subprocess
import sys

from scripts.engine import REPO_ROOT

PROVIDER_HOST = """
import sys
import pulumi.dynamic
from infra.providers import agent, environment, image, sandbox, server, token, webhook, workers
for name in ("AgentProvider", "EnvironmentProvider"):
    getattr(agent if name.startswith("Agent") else environment, name)().diff("i", {}, {"name": "x"})
loaded = sorted(m for m in ("anthropic", "blaxel", "infra.config") if m in sys.modules)
print(",".join(loaded) or "none")
"""


def test_provider_modules_and_diffs_import_no_platform_sdk_nor_the_config_model() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROVIDER_HOST],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    assert done.stdout.strip() == "none"


def test_the_program_imports_no_anthropic_sdk() -> None:
    probe = "import sys, infra.program; print('anthropic' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert done.stdout.strip() == "False"
