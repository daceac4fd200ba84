"""`python -m scripts.local_stack up|down`: the offline `local` stack, against the emulator.

`up` starts the emulator in the background (pid, log and data under .state/local/), selects the
`local` stack on a file backend in that folder, runs `pulumi up`, does in the emulator's Console
stand-in what a user does in the real Console (mint the environment key, register the webhook
URL and copy its signing secret), sets them as secret config, runs `pulumi up` again, prints
the outputs and runs the example session. `down` destroys the stack and stops the emulator.
`pulumi ARGS…` runs any pulumi command against the `local` stack (what `scripts/pulumi` does).

Every value set per run (emulator URLs, minted secrets) goes to the stack's config file under
.state/local/, passed to the engine with `--config-file`: the tracked `Pulumi.local.yaml` is
only the template it is copied from, and stays as committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from orchestrator_app.webhooks import RUN_STARTED, SESSION_ENDED
from scripts.engine import REPO_ROOT, PulumiError, PulumiProject, offline_env

STATE = REPO_ROOT / ".state" / "local"
STACK = "local"
# What the orchestrator acts on: dispatch on run-started, cleanup when a session ends.
CONSOLE_EVENTS = [RUN_STARTED, *SESSION_ENDED]
# The passphrase of the emulator-backed `local` stack only; it protects nothing real.
LOCAL_PASSPHRASE = "local-stack-only"
DEFAULT_EMULATOR_PORT = int(os.environ.get("CMA_EMULATOR_PORT", "18765"))


def log(message: str) -> None:
    print(f"local-stack: {message}", file=sys.stderr, flush=True)


# --- the emulator as a background service -------------------------------------------------


def running_emulator() -> dict[str, Any] | None:
    """The running emulator's base URLs and keys, or None if it is not (or no longer) up."""
    info_file, pid_file = STATE / "emulator.json", STATE / "emulator.pid"
    if not (info_file.exists() and pid_file.exists()):
        return None
    info: dict[str, Any] = json.loads(info_file.read_text())
    try:
        os.kill(int(pid_file.read_text()), 0)
        httpx.get(info["console_url"] + "/webhooks", timeout=2).raise_for_status()
    except (OSError, ValueError, httpx.HTTPError):
        return None
    return info


def start_emulator(port: int) -> dict[str, Any]:
    STATE.mkdir(parents=True, exist_ok=True)
    log_path = STATE / "emulator.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "--port",
                str(port),
                "--data-dir",
                str(STATE / "emulator-data"),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this script; stopped by `down`
            env={**os.environ, "DO_NOT_TRACK": "1"},
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"local-stack: the emulator did not start; see {log_path}")
    info: dict[str, Any] = json.loads(line)
    (STATE / "emulator.pid").write_text(str(process.pid))
    (STATE / "emulator.json").write_text(json.dumps(info, indent=2))
    log(f"emulator up at {info['anthropic_base_url']} (pid {process.pid}, log {log_path})")
    return info


def stop_emulator() -> None:
    pid_file = STATE / "emulator.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    (STATE / "emulator.json").unlink(missing_ok=True)
    log("emulator stopped")


# --- the stack ------------------------------------------------------------------------------


def local_project() -> PulumiProject:
    config_file = STATE / "Pulumi.local.yaml"
    if not config_file.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "Pulumi.local.yaml", config_file)  # the committed template
    env = offline_env(STATE / "pulumi-home", STATE / "backend", LOCAL_PASSPHRASE)
    project = PulumiProject(cwd=REPO_ROOT, stack=STACK, env=env, config_file=config_file)
    project.select_or_create()
    return project


def point_at_emulator(project: PulumiProject, emulator: dict[str, Any]) -> None:
    """Base URLs and the emulator's credentials, set only where they differ (so reruns are
    no-ops); one engine call reads the config and at most one writes it."""
    current = project.config_values()
    plain = {
        "cma:anthropicBaseUrl": emulator["anthropic_base_url"],
        "blaxel:baseUrl": emulator["blaxel_base_url"],
        "blaxel:workspace": emulator["blaxel_workspace"],
    }
    secret = {
        "cma:anthropicApiKey": emulator["anthropic_api_key"],
        "blaxel:apiKey": emulator["blaxel_api_key"],
    }
    project.set_configs(
        plain={key: value for key, value in plain.items() if current.get(key) != value},
        secret={key: value for key, value in secret.items() if current.get(key) != value},
    )


def do_console_steps(
    project: PulumiProject, emulator: dict[str, Any], outputs: dict[str, Any], record: Path
) -> bool:
    """What README tells a user to do in the real Console; True if a secret config value changed."""
    console = emulator["console_url"]
    done: dict[str, Any] = json.loads(record.read_text()) if record.exists() else {}
    changed = False
    current = project.config_values()
    if done.get("environment_id") != outputs["environment_id"] or not current.get(
        "cma:environmentKey"
    ):
        key = httpx.post(f"{console}/environments/{outputs['environment_id']}/keys", timeout=10)
        key.raise_for_status()
        project.set_config("cma:environmentKey", key.json()["key"], secret=True)
        done["environment_id"] = outputs["environment_id"]
        changed = True
        log(f"minted an environment key for {outputs['environment_id']} in the Console stand-in")
    if not outputs.get("webhook_url"):  # poll mode: no webhook to register
        record.write_text(json.dumps(done))
        return changed
    registered = {w["url"] for w in httpx.get(f"{console}/webhooks", timeout=10).json()["data"]}
    if outputs["webhook_url"] not in registered or not current.get("cma:webhookSigningSecret"):
        hook = httpx.post(
            f"{console}/webhooks",
            json={"url": outputs["webhook_url"], "events": CONSOLE_EVENTS},
            timeout=10,
        )
        hook.raise_for_status()
        project.set_config("cma:webhookSigningSecret", hook.json()["secret"], secret=True)
        changed = True
        log(f"registered {outputs['webhook_url']} for {', '.join(CONSOLE_EVENTS)}")
    record.write_text(json.dumps(done))
    return changed


def run_example(project: PulumiProject, emulator: dict[str, Any]) -> int:
    outputs = project.outputs()
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": emulator["anthropic_api_key"],
        "BL_API_KEY": emulator["blaxel_api_key"],
        "BL_WORKSPACE": emulator["blaxel_workspace"],
        "DO_NOT_TRACK": "1",
    }
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "run_session.py")],
        input=json.dumps(outputs),
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    return done.returncode


def up(port: int) -> int:
    emulator = running_emulator() or start_emulator(port)
    project = local_project()
    point_at_emulator(project, emulator)
    log("pulumi up (local stack)")
    project.stream("up", "--yes", "--skip-preview")
    if do_console_steps(project, emulator, project.outputs(), STATE / "console.json"):
        log("pulumi up again, to wire the Console's values into the orchestrator")
        project.stream("up", "--yes", "--skip-preview")
    print(json.dumps(project.outputs(), indent=2))
    return run_example(project, emulator)


# Commands (and `config`'s subcommands) that read stack config, hence take `--config-file`.
CONFIG_FILE_COMMANDS = frozenset(
    {"config", "up", "update", "preview", "pre", "refresh", "destroy", "down", "import", "watch"}
)


def pulumi_argv(args: list[str], config_file: Path) -> list[str]:
    """`pulumi ARGS…` for the local stack: `--config-file` added where the command takes it."""
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in CONFIG_FILE_COMMANDS:
        return ["pulumi", *args]
    # Before any "--", so that a config value that starts with a dash stays a value.
    split = args.index("--") if "--" in args else len(args)
    return ["pulumi", *args[:split], "--config-file", str(config_file), *args[split:]]


def run_pulumi(args: list[str]) -> int:
    """Replace this process with `pulumi ARGS…` on the local stack (env, backend, passphrase)."""
    project = local_project()
    assert project.config_file is not None
    if running_emulator() is None:
        log("the emulator is not running: commands that reach it fail (start it: scripts/local-up)")
    env = {**project.env, "PULUMI_STACK": STACK}  # the engine's own "current stack" override
    argv = pulumi_argv(args, project.config_file)
    os.chdir(project.cwd)
    os.execvpe(argv[0], argv, env)


def down() -> int:
    emulator = running_emulator()
    if emulator is not None and (STATE / "backend").exists():
        project = local_project()
        log("pulumi destroy (local stack)")
        project.stream("destroy", "--yes")
    stop_emulator()
    (STATE / "console.json").unlink(missing_ok=True)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["pulumi"]:
        return run_pulumi(sys.argv[2:])  # every further argument is pulumi's, unparsed
    parser = argparse.ArgumentParser(prog="python -m scripts.local_stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "pulumi"])
    parser.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT, help="emulator port")
    args = parser.parse_args()
    try:
        return up(args.port) if args.command == "up" else down()
    except PulumiError as exc:
        print(f"local-{args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
