"""Run the project's Pulumi engine (built by scripts/install-pulumi) offline, on a file backend.

Shared by the local-stack script and the engine tests, so both set the engine up the same way.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-pulumi"


@functools.cache
def engine_bin() -> Path:
    """The folder holding `pulumi` and the Python language host; builds them on first use
    (asked once per process: the install script takes a second even when all is cached)."""
    done = subprocess.run(
        [str(INSTALL_SCRIPT)], check=True, capture_output=True, text=True, cwd=REPO_ROOT
    )
    return Path(done.stdout.strip().splitlines()[-1])


def offline_env(pulumi_home: Path, backend_dir: Path, passphrase: str) -> dict[str, str]:
    """Environment for the engine: our venv and binaries first on PATH, no network, file backend."""
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ)
    env.update(
        PATH=os.pathsep.join([str(engine_bin()), str(venv_bin), env.get("PATH", "")]),
        PULUMI_HOME=str(pulumi_home),
        PULUMI_BACKEND_URL=backend_dir.as_uri(),
        PULUMI_CONFIG_PASSPHRASE=passphrase,
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK="true",
        PULUMI_RUNTIME_VIRTUALENV=str(venv_bin.parent),
        DO_NOT_TRACK="1",
    )
    pulumi_home.mkdir(parents=True, exist_ok=True)
    backend_dir.mkdir(parents=True, exist_ok=True)
    return env


class PulumiError(RuntimeError):
    """A pulumi command exited non-zero; carries its output."""


@dataclass
class PulumiProject:
    """One Pulumi project folder and stack, driven through the CLI."""

    cwd: Path
    stack: str
    env: dict[str, str]
    config_file: Path | None = None  # a stack config kept outside the project folder

    _TAKES_CONFIG_FILE = ("config", "up", "preview", "refresh", "destroy")

    def argv(self, *args: str) -> list[str]:
        """The pulumi command line for `args` on this stack (and its config file, if any)."""
        # Our flags go before a "--" so that a config value may itself start with a dash.
        split = args.index("--") if "--" in args else len(args)
        ours = ["--stack", self.stack, "--non-interactive"]
        if self.config_file is not None and args and args[0] in self._TAKES_CONFIG_FILE:
            ours += ["--config-file", str(self.config_file)]
        return ["pulumi", *args[:split], *ours, *args[split:]]

    def stream(self, *args: str) -> None:
        """Run a pulumi command with its output shown as it runs (progress of a long `up`)."""
        done = subprocess.run(self.argv(*args), cwd=self.cwd, env=self.env, timeout=1800)
        if done.returncode != 0:
            raise PulumiError(f"pulumi {' '.join(args)} exited {done.returncode} (output above)")

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise PulumiError(
                f"pulumi {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def select_or_create(self) -> None:
        self.run("stack", "select", "--create")  # --stack: added by argv

    def set_config(self, key: str, value: str, secret: bool = False) -> None:
        self.run("config", "set", key, *(["--secret"] if secret else []), "--", value)

    def set_configs(self, plain: Mapping[str, str], secret: Mapping[str, str]) -> None:
        """Several config values in one engine call (`pulumi config set-all`)."""
        args = [f"--plaintext={key}={value}" for key, value in plain.items()]
        args += [f"--secret={key}={value}" for key, value in secret.items()]
        if args:
            self.run("config", "set-all", *args)

    def config_values(self) -> dict[str, str]:
        """Every config value of the stack, secrets decrypted, as text (one engine call)."""
        done = self.run("config", "--json", "--show-secrets")
        entries: dict[str, dict[str, Any]] = json.loads(done.stdout or "{}")
        return {key: str(entry["value"]) for key, entry in entries.items() if "value" in entry}

    def outputs(self, show_secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "output", "--json", *(["--show-secrets"] if show_secrets else [])]
        return json.loads(self.run(*args).stdout or "{}")

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", *extra)

    def preview(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("preview", *extra)

    def preview_changes(self, *extra: str) -> dict[str, int]:
        """The preview's change summary, e.g. {"create": 2} or {"same": 7}."""
        done = self.run("preview", "--json", *extra)
        summary: dict[str, int] = json.loads(done.stdout).get("changeSummary", {})
        return summary
