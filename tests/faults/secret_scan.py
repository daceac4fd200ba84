"""The fault suite's secret scan: no secret value in plaintext in any log a scenario produced.

`LogSources` (one per session, the `log_sources` fixture) knows where a scenario's logs are and
where its secrets come from; the autouse `secret_scan` fixture (tests/faults/conftest.py) reads
them when each test ends and fails it through `assert_no_secret_in`, the one check.

Logs:
- every Python log record of this process (the providers run in-process in the step sweeps;
  the SDK clients and the emulator log here too), caught by `RecordCatcher`;
- each orchestrator subprocess's log file (`watch_stack`);
- the stdout and stderr of every process started in a sandbox of a watched emulator (the
  orchestrator server the stack runs there, and the workers; `started_processes`, which
  outlives deleted and replaced sandboxes);
- the output of every `pulumi` command an engine-level test ran (`watch_engine`), except
  `stack output --show-secrets`, which prints secrets because it was asked to.

Secrets:
- both platforms' API keys (each watched emulator's config);
- every environment key, signing secret, sessions token and work secret the emulator issued
  (`issued_secrets`, kept across resets);
- every credential-named variable handed to a sandbox process (the status token, the Blaxel
  key, the previous signing secret, a proxy secret, the work secret...);
- every `pulumi config set --secret` value an engine-level test set.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulator.server import EmulatorServer
from tests.orchestrator_app.emulated import Stack

# Variables whose value is a credential; short values ("true", "0") cannot be one.
CREDENTIAL_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSPHRASE")
NOT_CREDENTIALS = frozenset({"ORCH_WORKER_ENVIRONMENT_KEY_FALLBACK"})
MIN_SECRET_LENGTH = 12


def credential_values(env: dict[str, str]) -> Iterator[str]:
    """The values of the credential-named variables of `env` (pure)."""
    for name, value in env.items():
        if CREDENTIAL_NAME.search(name) and name not in NOT_CREDENTIALS:
            yield value


def leaks(logs: dict[str, str], secrets: Iterable[str]) -> list[str]:
    """`<log>: <secret prefix>…` for each secret found in plaintext in a log (pure).

    A `whsec_` signing secret is also looked for without its prefix (its key material).
    """
    wanted: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            wanted.add(secret)
            if secret.startswith("whsec_"):
                wanted.add(secret.removeprefix("whsec_"))
    return sorted(
        f"{source}: {secret[:10]}…"
        for source, text in logs.items()
        for secret in wanted
        if secret in text
    )


def assert_no_secret_in(logs: dict[str, str], secrets: Iterable[str]) -> None:
    """Fail naming each log that holds a secret (only a prefix of the secret is shown).

    `pytest.fail` without a traceback: a traceback would print this function's arguments,
    every secret and log in full, into the test report.
    """
    found = leaks(logs, secrets)
    if found:
        pytest.fail("secret values in plaintext in the scenario's logs: " + "; ".join(found), False)


class RecordCatcher(logging.Handler):
    """Every log record of this process while installed, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class EngineRecorder:
    """Wraps one project's `run`, `set_config` and `set_configs`: every output, every secret
    config value."""

    outputs: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def wrap(self, project: Any) -> None:
        run: Callable[..., Any] = project.run

        def recorded_run(*args: str, **kwargs: Any) -> Any:
            done = run(*args, **kwargs)
            if "--show-secrets" not in args:
                # The command's output only: its arguments may be a secret config value.
                self.outputs.append(f"{done.stdout}\n{done.stderr}")
            return done

        def recorded_set_config(key: str, value: str, secret: bool = False) -> None:
            if secret:
                self.secrets.append(value)
            recorded_run("config", "set", key, *(["--secret"] if secret else []), "--", value)

        set_configs: Callable[..., None] = project.set_configs

        def recorded_set_configs(plain: dict[str, str], secret: dict[str, str]) -> None:
            self.secrets.extend(secret.values())
            set_configs(plain=plain, secret=secret)  # its engine call goes through `run` above

        project.run = recorded_run
        project.set_config = recorded_set_config
        project.set_configs = recorded_set_configs


@dataclass
class LogSources:
    """What the running scenarios log to and which secrets they hold."""

    emulators: list[EmulatorServer] = field(default_factory=list)  # until forgotten
    stacks: list[Stack] = field(default_factory=list)  # until forgotten
    test_stacks: list[Stack] = field(default_factory=list)  # until the test ends
    engines: list[EngineRecorder] = field(default_factory=list)  # until the test ends
    # Forgotten at the next test's start, not at once: a test's own fixtures end before its
    # scan does, and what they made must still be scanned.
    _forgotten: list[object] = field(default_factory=list)

    def watch_emulator(self, server: EmulatorServer) -> None:
        self.emulators.append(server)

    def forget_emulator(self, server: EmulatorServer) -> None:
        self._forgotten.append(server)

    def watch_stack(self, stack: Stack, *, this_test_only: bool = True) -> None:
        """A stack's orchestrator logs and credentials (a shared stack: until forgotten)."""
        (self.test_stacks if this_test_only else self.stacks).append(stack)

    def forget_stack(self, stack: Stack) -> None:
        self._forgotten.append(stack)

    def watch_engine(self, project: Any) -> None:
        recorder = EngineRecorder()
        recorder.wrap(project)
        self.engines.append(recorder)

    def begin_test(self) -> None:
        """Drop what was forgotten since the last test (its scan has run)."""
        gone = [id(thing) for thing in self._forgotten]
        self.emulators = [e for e in self.emulators if id(e) not in gone]
        self.stacks = [s for s in self.stacks if id(s) not in gone]
        self._forgotten.clear()

    def end_test(self) -> None:
        """Forget what belonged to the test that ended (shared ones stay until forgotten)."""
        self.test_stacks.clear()
        self.engines.clear()

    def logs(self, records: list[str]) -> dict[str, str]:
        """Each log by a name that says where it is."""
        logs = {"python logging": "\n".join(records)}
        for stack in [*self.stacks, *self.test_stacks]:
            for orchestrator in stack.orchestrators:
                logs[f"orchestrator log {orchestrator.log_path.name}"] = orchestrator.logs()
        for server in self.emulators:
            for index, (sandbox, process) in enumerate(
                list(server.emulator.blaxel.started_processes)
            ):
                stdout, stderr, _ = process.output()
                where = f"sandbox {sandbox} process {process.name} (#{index})"
                logs[f"{where} stdout"], logs[f"{where} stderr"] = stdout, stderr
        for index, engine in enumerate(self.engines):
            logs[f"engine output #{index}"] = "\n".join(engine.outputs)
        return logs

    def secrets(self) -> set[str]:
        found: set[str] = set()
        for server in self.emulators:
            found |= {server.config.anthropic_api_key, server.config.blaxel_api_key}
            found |= set(server.emulator.anthropic.issued_secrets)
            for _, process in list(server.emulator.blaxel.started_processes):
                found |= set(credential_values(process.env))
        for stack in [*self.stacks, *self.test_stacks]:
            found.add(stack.environment_key)
            for orchestrator in stack.orchestrators:  # its ORCH_* settings, not the inherited rest
                settings = {k: v for k, v in orchestrator.env.items() if k.startswith("ORCH_")}
                found |= set(credential_values(settings))
        for engine in self.engines:
            found |= set(engine.secrets)
        return found
