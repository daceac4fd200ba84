"""The orchestrator server: the `python -m orchestrator_app` process in the orchestrator sandbox.

Any input change (signing secret, environment key, image digest, settings) restarts the
process in place under a new revision; the sandbox, hence its preview URL, stays. `up` waits
for `/health`, and for `/ready` once the secrets its dispatch mode needs are set: through the
public preview URL in webhook mode, through the sandbox API in poll mode (no preview there).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.providers.base import CmaProvider, CmaResource, Props

# Without these the server runs but is not ready (DESIGN §2): /ready is awaited only with them.
READY_SECRETS = {
    "webhook": ("ORCH_ENVIRONMENT_KEY", "ORCH_WEBHOOK_SIGNING_SECRET"),
    "poll": ("ORCH_ENVIRONMENT_KEY",),  # no webhook, no signing secret
}
PROCESS_PREFIX = "orchestrator-r"


class ServerProps(Props):
    """Inputs of the orchestrator server."""

    sandbox_name: str
    url: str  # the public preview URL; "" in poll mode
    settings: dict[str, str]
    secrets: dict[str, str | None] = {}
    image_digest: str = ""
    # Changes whenever the sandbox is updated, which may have stopped its processes.
    sandbox_spec_digest: str = ""
    command: str = "python -m orchestrator_app"
    working_dir: str = "/app"
    health_timeout_s: float = 120.0  # from customTimeouts
    # With no public URL: the port `up` reaches /health and /ready on, through the sandbox API.
    private_port: int | None = None
    # Where the start request is saved on the sandbox's state volume, for the image's
    # entrypoint to start the server again after Blaxel rebuilds the sandbox ("": not saved).
    state_file: str = ""


def process_name(revision: int) -> str:
    """Each revision runs under its own name: a restart never collides with the old one."""
    return f"{PROCESS_PREFIX}{revision}"


def process_env(p: ServerProps) -> dict[str, str]:
    """Settings plus the secrets that are set; a missing secret is left out (pure)."""
    env = {k: str(v) for k, v in p.settings.items()}
    env.update({k: v for k, v in p.secrets.items() if v})
    return env


def process_payload(p: ServerProps, revision: int) -> dict[str, Any]:
    """The process request: detached, kept alive, no time limit, restarted on every failure
    (`maxRestarts` negative: no limit, SDK `sandbox/client/models/process_request.py:26`), so
    a crash months later still comes back (pure)."""
    return {
        "name": process_name(revision),
        "command": p.command,
        "workingDir": p.working_dir,
        "env": process_env(p),
        "waitForCompletion": False,
        "keepAlive": True,
        "timeout": 0,  # 0: no limit (keepAlive alone would stop it after 600 s)
        "restartOnFailure": True,
        "maxRestarts": -1,
    }


def dispatch_mode(p: ServerProps) -> str:
    return p.settings.get("ORCH_DISPATCH_MODE", "webhook")


def expects_ready(p: ServerProps) -> bool:
    """Whether every secret `/ready` needs in the server's dispatch mode is set (pure)."""
    return all(p.secrets.get(name) for name in READY_SECRETS[dispatch_mode(p)])


def server_outputs(p: ServerProps, revision: int) -> dict[str, Any]:
    """State: inputs (secrets secret), the revision and the process it runs as (pure)."""
    return {
        **p.model_dump(),
        "revision": revision,
        "process": process_name(revision),
        "ready": expects_ready(p),
    }


class ServerProvider(CmaProvider):
    """Starts, restarts and stops the orchestrator process through the sandbox API."""

    props_model = ServerProps
    not_diffed = frozenset({"health_timeout_s"})

    def _start(self, p: ServerProps, revision: int) -> dict[str, Any]:
        from infra.clients import blaxel as bl
        from infra.clients.errors import Invalid, Transient
        from infra.clients.orchestrator import wait_until_ok

        creds = self.blaxel()
        bl.wait_sandbox_deployed(creds, p.sandbox_name, timeout_s=p.health_timeout_s)
        name = process_name(revision)
        payload = process_payload(p, revision)
        if p.state_file:
            bl.write_file(creds, p.sandbox_name, p.state_file, json.dumps(payload))
        try:
            bl.start_process(creds, p.sandbox_name, payload)
        except Invalid as exc:
            if "already exists" not in str(exc):
                raise
            # A boot replayed a saved request of this name meanwhile: ours replaces it.
            _stop(creds, p.sandbox_name, name)
            bl.start_process(creds, p.sandbox_name, payload)

        def still_running() -> None:
            state = bl.get_process(creds, p.sandbox_name, name)
            # A server that fails while starting is rerun without end: its first failure
            # fails the `up`, with what it printed.
            if state.get("status") not in ("running", "starting") or state.get("restartCount"):
                raise Transient(
                    f"orchestrator process {name} failed while starting ({state.get('status')}, "
                    f"exit code {state.get('exitCode')}): {str(state.get('stderr'))[-800:]}"
                )

        for path in ("/health", "/ready") if expects_ready(p) else ("/health",):
            url, get = self._endpoint(p, path)
            wait_until_ok(url, p.health_timeout_s, still_running=still_running, get=get)
        return server_outputs(p, revision)

    def _endpoint(self, p: ServerProps, path: str) -> tuple[str, Any]:
        """Where `up` reaches one of the server's endpoints: its public URL, else the sandbox
        API's route to its port (with our Blaxel credentials)."""
        from infra.clients import blaxel as bl

        if p.url or p.private_port is None:
            return f"{p.url}{path}", None
        creds, port = self.blaxel(), p.private_port
        return (
            f"port {port}{path} of sandbox {p.sandbox_name}",
            lambda: bl.fetch_port(creds, p.sandbox_name, port, path),
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        p: ServerProps = self.validated(props)
        # A process left by an earlier failed run holds the port: stop every revision we ran.
        _stop_all(self.blaxel(), p.sandbox_name)
        return CreateResult(p.sandbox_name, self._start(p, 1))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        p: ServerProps = self.validated(news)
        old_revision = int(olds.get("revision") or 0)
        old_sandbox = str(olds.get("sandbox_name") or p.sandbox_name)
        _stop(self.blaxel(), old_sandbox, process_name(old_revision))
        return UpdateResult(self._start(p, old_revision + 1))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.clients import blaxel as bl
        from infra.clients.errors import NotFound

        name = str(props.get("process") or "")
        try:
            state = bl.get_process(self.blaxel(), id_, name) if name else {}
        except NotFound:
            state = {}
        if state.get("status") not in ("running", "starting"):
            return ReadResult("", {})
        p: ServerProps = self.validated(props)
        return ReadResult(
            id_,
            {**props, **server_outputs(p, int(props.get("revision") or 1))},
            inputs=p.model_dump(),
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import blaxel as bl

        if props.get("state_file"):  # first: a rebuilt sandbox must not bring it back
            bl.remove_file(self.blaxel(), id_, str(props["state_file"]))
        _stop(self.blaxel(), id_, str(props.get("process") or ""))


def _stop(creds: Any, sandbox: str, name: str) -> None:
    from infra.clients import blaxel as bl

    if not name:
        return
    bl.kill_process(creds, sandbox, name)
    bl.wait_process_stopped(creds, sandbox, name)


def _stop_all(creds: Any, sandbox: str) -> None:
    from infra.clients import blaxel as bl

    for name in bl.list_process_names(creds, sandbox):
        if name.startswith(PROCESS_PREFIX):
            _stop(creds, sandbox, name)


class OrchestratorServer(CmaResource, module="cma", name="OrchestratorServer"):
    """The orchestrator process; `revision` goes up by one at every restart."""

    provider_class = ServerProvider
    output_names = ("revision", "process", "ready")
    secret_output_names = ("secrets",)

    revision: pulumi.Output[int]
    process: pulumi.Output[str]
