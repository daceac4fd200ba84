"""The orchestrator server: the `python -m orchestrator_app` process in the orchestrator sandbox.

Any input change (signing secret, environment key, image digest, settings) restarts the
process in place under a new revision; the sandbox, hence its preview URL, stays. `up` waits
for `/health`, and for `/ready` once both secrets are set.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from infra.clients import blaxel as bl
from infra.clients.errors import NotFound, Transient
from infra.clients.orchestrator import wait_until_ok
from infra.providers.base import (
    BLAXEL_CREDENTIAL_FIELDS,
    PortableProvider,
    Props,
    blaxel_credentials,
    check_with,
    field_diff,
    pick,
    with_defaults,
    with_secret_outputs,
)

FIELDS = (
    "sandbox_name",
    "sandbox_spec_digest",
    "url",
    "settings",
    "secrets",
    "image_digest",
    "command",
    "working_dir",
)
# Without these the server runs but is not ready (DESIGN §2): /ready is awaited only with both.
READY_SECRETS = ("ORCH_ENVIRONMENT_KEY", "ORCH_WEBHOOK_SIGNING_SECRET")
PROCESS_PREFIX = "orchestrator-r"


class ServerProps(Props):
    """Inputs of the orchestrator server."""

    sandbox_name: str
    url: str
    settings: dict[str, str]
    secrets: dict[str, str | None] = {}
    image_digest: str = ""
    # Changes whenever the sandbox is updated, which may have stopped its processes.
    sandbox_spec_digest: str = ""
    command: str = "python -m orchestrator_app"
    working_dir: str = "/app"
    health_timeout_s: float = 120.0


def process_name(revision: int) -> str:
    """Each revision runs under its own name: a restart never collides with the old one."""
    return f"{PROCESS_PREFIX}{revision}"


def process_env(props: dict[str, Any]) -> dict[str, str]:
    """Settings plus the secrets that are set; a missing secret is left out (pure)."""
    p = ServerProps.model_validate(props)
    env = {k: str(v) for k, v in p.settings.items()}
    env.update({k: v for k, v in p.secrets.items() if v})
    return env


def process_payload(props: dict[str, Any], revision: int) -> dict[str, Any]:
    """The process request: detached, kept alive, no time limit, restarted on failure (pure)."""
    p = ServerProps.model_validate(props)
    return {
        "name": process_name(revision),
        "command": p.command,
        "workingDir": p.working_dir,
        "env": process_env(props),
        "waitForCompletion": False,
        "keepAlive": True,
        "timeout": 0,  # 0: no limit (keepAlive alone would stop it after 600 s)
        "restartOnFailure": True,
        "maxRestarts": 5,
    }


def expects_ready(props: dict[str, Any]) -> bool:
    """Whether every secret `/ready` needs is set (pure)."""
    secrets = ServerProps.model_validate(props).secrets
    return all(secrets.get(name) for name in READY_SECRETS)


def server_outputs(props: dict[str, Any], revision: int) -> dict[str, Any]:
    """State: inputs (secrets secret), the revision and the process it runs as."""
    p = ServerProps.model_validate(props)
    return {
        **pick(props, BLAXEL_CREDENTIAL_FIELDS),
        **pick(p.model_dump(), FIELDS),
        "revision": revision,
        "process": process_name(revision),
        "ready": expects_ready(props),
    }


class ServerProvider(PortableProvider):
    """Starts, restarts and stops the orchestrator process through the sandbox API."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return check_with(ServerProps, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        wanted = {**news, **pick(with_defaults(ServerProps, news), FIELDS)}
        return field_diff(olds, wanted, (*FIELDS, *BLAXEL_CREDENTIAL_FIELDS))

    def _start(self, props: dict[str, Any], revision: int) -> dict[str, Any]:
        p = ServerProps.model_validate(props)
        creds = blaxel_credentials(props)
        bl.wait_sandbox_deployed(creds, p.sandbox_name)
        name = process_name(revision)
        bl.start_process(creds, p.sandbox_name, process_payload(props, revision))

        def still_running() -> None:
            state = bl.get_process(creds, p.sandbox_name, name)
            if state.get("status") not in ("running", "starting"):
                raise Transient(
                    f"orchestrator process {name} stopped ({state.get('status')}, "
                    f"exit code {state.get('exit_code')}): {str(state.get('stderr'))[-800:]}"
                )

        wait_until_ok(f"{p.url}/health", p.health_timeout_s, still_running=still_running)
        if expects_ready(props):
            wait_until_ok(f"{p.url}/ready", p.health_timeout_s, still_running=still_running)
        return server_outputs(props, revision)

    def create(self, props: dict[str, Any]) -> CreateResult:
        p = ServerProps.model_validate(props)
        creds = blaxel_credentials(props)
        # A process left by an earlier failed run holds the port: stop every revision we ran.
        _stop_all(creds, p.sandbox_name)
        return CreateResult(p.sandbox_name, self._start(props, 1))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old_revision = int(olds.get("revision") or 0)
        old_sandbox = str(olds.get("sandbox_name") or news["sandbox_name"])
        creds = blaxel_credentials(news)
        _stop(creds, old_sandbox, process_name(old_revision))
        return UpdateResult(self._start(news, old_revision + 1))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        name = str(props.get("process") or "")
        try:
            state = bl.get_process(blaxel_credentials(props), id_, name) if name else {}
        except NotFound:
            state = {}
        if state.get("status") not in ("running", "starting"):
            return ReadResult("", {})
        return ReadResult(id_, props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        _stop(blaxel_credentials(props), id_, str(props.get("process") or ""))


def _stop(creds: bl.BlaxelCredentials, sandbox: str, name: str) -> None:
    if not name:
        return
    bl.kill_process(creds, sandbox, name)
    bl.wait_process_stopped(creds, sandbox, name)


def _stop_all(creds: bl.BlaxelCredentials, sandbox: str) -> None:
    for name in bl.list_process_names(creds, sandbox):
        if name.startswith(PROCESS_PREFIX):
            _stop(creds, sandbox, name)


class OrchestratorServer(Resource):
    """The orchestrator process; `revision` goes up by one at every restart."""

    revision: pulumi.Output[int]
    process: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            ServerProvider(),
            resource_name,
            {**props, "revision": None, "process": None, "ready": None},
            with_secret_outputs(opts, "blaxel_api_key", "secrets"),
        )
