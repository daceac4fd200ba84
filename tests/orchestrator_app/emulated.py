"""The orchestrator against the emulator: a CMA environment with its key, the worker image
pushed to the emulated Blaxel, and `python -m orchestrator_app` as a real subprocess on loopback.

Everything goes through the official SDKs or the Console stand-in; the emulator's in-process
state is read only to check what happened (claims, process starts, deletions).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx

from emulator.server import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]
WORKER_IMAGE_NAME = "cma-worker"
T = TypeVar("T")
# What the orchestrator's Console webhook subscribes to (run-started, and the session's end).
WEBHOOK_EVENTS = ("session.status_run_started", "session.status_terminated", "session.deleted")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def console(server: EmulatorServer, method: str, path: str, **kwargs: Any) -> Any:
    """The Console stand-in (no SDK call exists for these): plain HTTP on loopback."""
    response = httpx.request(method, server.config.console_url + path, trust_env=False, **kwargs)
    response.raise_for_status()
    return response.json()


def push_worker_image(server: EmulatorServer, image: Any = None) -> str:
    """Build and push `image` (by default `worker.image.worker_image()`) with the SDK; returns
    the image ref."""
    from blaxel.core.authentication import ApiKey, CredentialsType
    from blaxel.core.client.client import client as blaxel_client
    from blaxel.core.common.settings import settings as blaxel_settings

    from infra.images import as_instance
    from worker.image import worker_image

    config = server.config
    auth = ApiKey(
        CredentialsType(api_key=config.blaxel_api_key, workspace=config.blaxel_workspace),
        config.blaxel_workspace,
        config.blaxel_base_url,
    )
    blaxel_client.with_base_url(config.blaxel_base_url)
    blaxel_client.with_auth(auth)
    blaxel_settings.auth = auth
    image = as_instance(image or worker_image(max_idle_seconds=1))
    built = image.build_sync(name=WORKER_IMAGE_NAME, timeout=60)
    runtime: Any = built.spec.runtime
    return str(runtime.image)  # e.g. <workspace>/sandbox/cma-worker:<tag>


@dataclass
class Orchestrator:
    """`python -m orchestrator_app` on 127.0.0.1:<port>, its JSON logs in a file."""

    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Orchestrator:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator_app"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, "the orchestrator's /health", timeout=90)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"orchestrator exited {self.process.returncode}: {self.logs()}")
        try:
            return httpx.get(self.url + "/health", trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, trust_env=False, timeout=30)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, trust_env=False, timeout=30, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def logged(self, msg: str, **fields: Any) -> bool:
        return any(
            e.get("msg") == msg and all(e.get(k) == v for k, v in fields.items())
            for e in self.log_entries()
        )


@dataclass
class Stack:
    """One CMA environment served by one orchestrator, on a shared emulator."""

    server: EmulatorServer
    client: anthropic.Anthropic
    environment_id: str
    environment_key: str
    agent_id: str
    worker_image: str
    tmp: Path
    webhook_ids: list[str] = field(default_factory=list)
    orchestrators: list[Orchestrator] = field(default_factory=list)

    def register_webhook(self, url: str) -> tuple[str, str]:
        """(endpoint id, signing secret) of a new Console webhook for run-started events."""
        answer = console(
            self.server,
            "POST",
            "/webhooks",
            json={"url": url, "events": list(WEBHOOK_EVENTS)},
        )
        self.webhook_ids.append(answer["id"])
        return answer["id"], answer["secret"]

    def orchestrator_env(self, port: int, **overrides: str | None) -> dict[str, str]:
        config = self.server.config
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "ANTHROPIC_", "BL_"))
        }
        env: dict[str, str | None] = {
            **inherited,
            "DO_NOT_TRACK": "1",
            "PYTHONPATH": str(ROOT),
            "ORCH_HOST": "127.0.0.1",
            "ORCH_PORT": str(port),
            "ORCH_ENVIRONMENT_ID": self.environment_id,
            "ORCH_ENVIRONMENT_KEY": self.environment_key,
            "ORCH_ANTHROPIC_BASE_URL": config.anthropic_base_url,
            "ORCH_BLAXEL_BASE_URL": config.blaxel_base_url,
            "ORCH_BLAXEL_API_KEY": config.blaxel_api_key,
            "ORCH_BLAXEL_WORKSPACE": config.blaxel_workspace,
            "ORCH_WORKER_IMAGE": self.worker_image,
            "ORCH_WORKER_REGION": "us-pdx-1",
            "ORCH_WORKER_MAX_IDLE_SECONDS": "1",
            "ORCH_JANITOR_INTERVAL_SECONDS": "0.5",
            "ORCH_EMPTY_DRAIN_RETRIES": "2",
            "ORCH_EMPTY_DRAIN_RETRY_SECONDS": "0.2",
            "ORCH_RECOVERY_POLL_SECONDS": "0",
            "ORCH_RETRY_BASE_SECONDS": "0.05",
            **overrides,
        }
        return {k: v for k, v in env.items() if v is not None}

    def orchestrator(self, *, webhook: bool = True, **overrides: str | None) -> Orchestrator:
        """Start an orchestrator for this environment (with a registered webhook by default)."""
        port = free_loopback_port()
        if webhook:
            _, secret = self.register_webhook(f"http://127.0.0.1:{port}/webhook")
            overrides = {"ORCH_WEBHOOK_SIGNING_SECRET": secret, **overrides}
        log_path = self.tmp / f"orchestrator-{port}.log"
        orchestrator = Orchestrator(port, self.orchestrator_env(port, **overrides), log_path)
        self.orchestrators.append(orchestrator)
        return orchestrator.start()

    def create_session(self, environment_id: str | None = None) -> str:
        session = self.client.beta.sessions.create(
            agent=self.agent_id, environment_id=environment_id or self.environment_id
        )
        return str(session.id)

    def say(self, session_id: str, text: str) -> None:
        self.client.beta.sessions.events.send(
            session_id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}],
        )

    def events(self, session_id: str) -> list[Any]:
        return list(self.client.beta.sessions.events.list(session_id))

    def worker_starts(self, session_id: str | None = None) -> list[Any]:
        """Worker processes the emulated Blaxel started (all, or in this session's sandbox)."""
        from orchestrator_app.workers import worker_sandbox_name

        starts = [
            s for s in self.server.emulator.blaxel.process_starts if s.command == "python -m worker"
        ]
        if session_id is None:
            return starts
        return [s for s in starts if s.sandbox == worker_sandbox_name(session_id)]

    def claims(self, session_id: str) -> list[str | None]:
        return self.server.emulator.anthropic.workers_for(session_id)

    def close(self) -> None:
        for orchestrator in self.orchestrators:
            orchestrator.stop()
        for webhook_id in self.webhook_ids:
            httpx.delete(f"{self.server.config.console_url}/webhooks/{webhook_id}", trust_env=False)


def make_stack(server: EmulatorServer, worker_image: str, tmp: Path, name: str) -> Stack:
    """A fresh environment (and its key) and agent in the emulated CMA."""
    config = server.config
    client = anthropic.Anthropic(
        base_url=config.anthropic_base_url, api_key=config.anthropic_api_key
    )
    environment = client.beta.environments.create(name=name, config={"type": "self_hosted"})
    agent = client.beta.agents.create(
        name=f"{name}-agent",
        model="claude-sonnet-4-6",
        tools=[{"type": "agent_toolset_20260401"}],
    )
    key = console(server, "POST", f"/environments/{environment.id}/keys")["key"]
    return Stack(server, client, environment.id, key, agent.id, worker_image, tmp)


def iter_known_secrets(stack: Stack) -> Iterator[str]:
    """Every secret value a log line must never contain."""
    config = stack.server.config
    yield stack.environment_key
    yield config.anthropic_api_key
    yield config.blaxel_api_key
    for orchestrator in stack.orchestrators:
        secret = orchestrator.env.get("ORCH_WEBHOOK_SIGNING_SECRET")
        if secret:
            yield secret
            yield secret.removeprefix("whsec_")
    # Every credential the emulator handed out: environment keys, signing secrets, sessions
    # tokens and whole work secrets.
    yield from list(stack.server.emulator.anthropic.issued_secrets)


def sandbox_process_output(server: EmulatorServer) -> str:
    """Everything every emulated sandbox process wrote (workers' logs included)."""
    chunks: list[str] = []
    for sandbox in list(server.emulator.blaxel.sandboxes.values()):
        for process in sandbox.processes.list():
            chunks.extend(process.output())
    return "\n".join(chunks)
