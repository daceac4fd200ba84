"""Blaxel calls the stack makes: sandboxes, previews, image builds, processes in a sandbox.

The official SDK keeps one global control-plane client; `_connect` points it (and the
sandbox-API settings) at the credentials of the call, so nothing is captured between calls.
SDK failures become `infra.clients.errors` exceptions here and nowhere else.
"""

from __future__ import annotations

import functools
import logging
import os
import time

# The SDK reports errors and usage to vendors' telemetry unless told not to, and reads
# this at import time: set it before the first `blaxel` import.
os.environ.setdefault("DO_NOT_TRACK", "1")

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from blaxel.core.authentication.apikey import ApiKey
from blaxel.core.authentication.types import CredentialsType
from blaxel.core.client.api.compute import (
    create_sandbox,
    create_sandbox_preview,
    delete_sandbox,
    delete_sandbox_preview,
    get_sandbox,
    list_sandbox_previews,
    update_sandbox,
)
from blaxel.core.client.client import client as control_plane
from blaxel.core.client.models import Preview, Sandbox
from blaxel.core.common.settings import settings
from blaxel.core.errors import BlaxelError
from blaxel.core.sandbox.sync.action import SyncSandboxAction
from blaxel.core.sandbox.sync.sandbox import SyncSandboxInstance

from infra.clients.errors import NotFound, error_for_status, poll_delays, with_retries
from infra.clients.tls import shared_tls_context

T = TypeVar("T")
# The SDKs log every request at INFO; in `pulumi up` that drowns the resource diagnostics.
for _noisy in ("httpx", "httpx2"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class BlaxelCredentials:
    """The control plane's URL, the workspace and the key to call it with (never logged)."""

    base_url: str
    workspace: str
    api_key: str

    def __repr__(self) -> str:
        return f"BlaxelCredentials(base_url={self.base_url!r}, workspace={self.workspace!r}, api_key=***)"


def _connect(creds: BlaxelCredentials) -> None:
    """Point the SDK's global clients at `creds` (no env var moves the control plane)."""
    auth = ApiKey(
        CredentialsType(api_key=creds.api_key, workspace=creds.workspace),
        creds.workspace,
        creds.base_url,
    )
    settings.auth = auth
    control_plane.with_base_url(creds.base_url)
    control_plane.with_auth(auth)


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except BlaxelError as exc:
        raise error_for_status(exc.status, f"Blaxel {what}: {exc}") from exc
    except httpx.TransportError as exc:
        raise error_for_status(None, f"Blaxel {what}: cannot connect: {exc}") from exc


def _api(creds: BlaxelCredentials, what: str, call: Callable[[], Any]) -> Any:
    """Run one generated-API call; a non-200 answer raises; returns the parsed model."""

    def once() -> Any:
        _connect(creds)
        with _mapped(what):
            response = call()
        if response.status_code != 200:
            raise error_for_status(int(response.status_code), f"Blaxel {what}: {_detail(response)}")
        return response.parsed

    return with_retries(once)


def _detail(response: Any) -> str:
    text = response.content.decode("utf-8", "replace")[:300] if response.content else ""
    return f"HTTP {int(response.status_code)} {text}".strip()


def _model(cls: Any, body: dict[str, Any]) -> Any:
    model = cls.from_dict(body)
    if model is None:
        raise error_for_status(400, f"cannot build a {cls.__name__} from {sorted(body)}")
    return model


# Sandboxes


def get_sandbox_by_name(creds: BlaxelCredentials, name: str) -> dict[str, Any]:
    """Read a sandbox; a terminated one (kept a few minutes after delete) counts as gone."""
    sandbox = _api(
        creds, f"get sandbox {name}", lambda: get_sandbox.sync_detailed(name, client=control_plane)
    )
    data: dict[str, Any] = sandbox.to_dict()
    if data.get("status") in ("TERMINATED", "DELETING"):
        raise NotFound(f"sandbox {name} is {data['status'].lower()}", 404)
    return data


def create_sandbox_from_spec(creds: BlaxelCredentials, body: dict[str, Any]) -> dict[str, Any]:
    """Create a sandbox from a payload of `sandbox_payload`."""
    model = _model(Sandbox, body)
    sandbox = _api(
        creds,
        "create sandbox",
        lambda: create_sandbox.sync_detailed(client=control_plane, body=model),
    )
    return dict(sandbox.to_dict())


def update_sandbox_spec(
    creds: BlaxelCredentials, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Update a sandbox in place (same name: same preview URL)."""
    model = _model(Sandbox, body)
    sandbox = _api(
        creds,
        f"update sandbox {name}",
        lambda: update_sandbox.sync_detailed(name, client=control_plane, body=model),
    )
    return dict(sandbox.to_dict())


def delete_sandbox_by_name(
    creds: BlaxelCredentials,
    name: str,
    timeout_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Delete a sandbox and wait until its name is free; already gone is success.

    A deletion goes through DELETING, during which a create of the same name is refused
    (409 SANDBOX_DELETION_IN_PROGRESS, docs/platform-contract.md): a replacement that deletes
    first, and a destroy that must leave nothing, both wait here until it is over.
    """
    try:
        _api(
            creds,
            f"delete sandbox {name}",
            lambda: delete_sandbox.sync_detailed(name, client=control_plane),
        )
    except NotFound:
        return
    deadline = time.monotonic() + timeout_s
    delays = poll_delays(cap=0.5)
    while True:
        try:  # not get_sandbox_by_name: it calls a DELETING sandbox gone already
            status = (
                _api(
                    creds,
                    f"get sandbox {name}",
                    lambda: get_sandbox.sync_detailed(name, client=control_plane),
                )
                .to_dict()
                .get("status")
            )
        except NotFound:
            return
        if status != "DELETING":  # TERMINATED: kept for a while, its name free again
            return
        if time.monotonic() > deadline:
            raise error_for_status(
                None, f"Blaxel sandbox {name} still DELETING after {timeout_s:.0f}s"
            )
        sleep(next(delays))


# Previews


def list_previews(creds: BlaxelCredentials, sandbox: str) -> list[dict[str, Any]]:
    """The previews of a sandbox."""
    previews = _api(
        creds,
        f"list previews of {sandbox}",
        lambda: list_sandbox_previews.sync_detailed(sandbox, client=control_plane),
    )
    return [p.to_dict() for p in previews or []]


def create_preview(creds: BlaxelCredentials, sandbox: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a preview from a payload of `preview_payload`."""
    model = _model(Preview, body)
    preview = _api(
        creds,
        f"create preview of {sandbox}",
        lambda: create_sandbox_preview.sync_detailed(sandbox, client=control_plane, body=model),
    )
    return dict(preview.to_dict())


def delete_preview(creds: BlaxelCredentials, sandbox: str, preview: str) -> None:
    """Delete a preview; already gone (or its sandbox gone) is success."""
    try:
        _api(
            creds,
            f"delete preview {preview} of {sandbox}",
            lambda: delete_sandbox_preview.sync_detailed(sandbox, preview, client=control_plane),
        )
    except NotFound:
        return


# Processes inside a sandbox (the sandbox's own API, at its metadata.url)


def _instance(creds: BlaxelCredentials, sandbox_name: str) -> SyncSandboxInstance:
    _connect(creds)
    with _mapped(f"get sandbox {sandbox_name}"):
        return _share_tls(SyncSandboxInstance.get(sandbox_name))


def _share_tls(instance: SyncSandboxInstance) -> SyncSandboxInstance:
    """The instance, its process, filesystem and network actions making their clients with the
    shared TLS context (`infra/clients/tls.py`: the SDK makes one client, and loads the CA
    bundle, per call)."""
    for action in (instance.process, instance.fs, instance.network):
        action.get_client = functools.partial(_client_like_the_sdks, action)  # type: ignore[method-assign]
    return instance


def _client_like_the_sdks(action: SyncSandboxAction) -> httpx.Client:
    """The client `SyncSandboxAction.get_client` makes (same URL and headers; SDK
    `core/sandbox/sync/action.py:52`), with the shared TLS context."""
    config = action.sandbox_config
    if config.force_url:
        return httpx.Client(
            base_url=config.force_url, headers=config.headers, verify=shared_tls_context()
        )
    return httpx.Client(
        base_url=action.url,
        headers={**settings.headers, **config.headers},
        verify=shared_tls_context(),
    )


def _in_sandbox(
    creds: BlaxelCredentials, sandbox_name: str, what: str, call: Callable[[Any], T]
) -> T:
    """One sandbox-API call, retried like every one: the first call after a standby may fail
    once (DESIGN §3)."""

    def once() -> T:
        sandbox = _instance(creds, sandbox_name)
        with _mapped(f"{what} in {sandbox_name}"):
            return call(sandbox)

    return with_retries(once)


def start_process(
    creds: BlaxelCredentials, sandbox_name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Start a long-running process (a payload of `process_payload`), not waiting for it."""
    return _in_sandbox(
        creds, sandbox_name, "start process", lambda s: dict(s.process.exec(body).to_dict())
    )


def get_process(creds: BlaxelCredentials, sandbox_name: str, process: str) -> dict[str, Any]:
    """A process's state (status, exit code, output tail)."""
    return _in_sandbox(
        creds,
        sandbox_name,
        f"get process {process}",
        lambda s: dict(s.process.get(process).to_dict()),
    )


def fetch_port(
    creds: BlaxelCredentials,
    sandbox_name: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """(status, body) of a GET on a sandbox port through the sandbox API, with our credentials:
    no preview needed (SDK `core/sandbox/sync/network.py`, `SyncSandboxNetwork.fetch`)."""
    sandbox = _instance(creds, sandbox_name)
    with _mapped(f"GET port {port}{path} of {sandbox_name}"):
        response = sandbox.network.fetch(port, path, headers=headers or {})
    return response.status_code, response.text[:2000]


def kill_process(creds: BlaxelCredentials, sandbox_name: str, process: str) -> None:
    """Kill a process; not running, unknown, or sandbox gone is success."""
    try:
        _in_sandbox(
            creds, sandbox_name, f"kill process {process}", lambda s: s.process.kill(process)
        )
    except NotFound:
        return


def delete_image_by_name(creds: BlaxelCredentials, name: str) -> None:
    """Delete a pushed sandbox image; already gone is success."""
    from blaxel.core.client.api.images import delete_image

    try:
        _api(
            creds,
            f"delete image {name}",
            lambda: delete_image.sync_detailed("sandbox", name, client=control_plane),
        )
    except NotFound:
        return


def wait_sandbox_deployed(
    creds: BlaxelCredentials,
    name: str,
    timeout_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll a sandbox until DEPLOYED; FAILED (or timing out) raises."""
    deadline = time.monotonic() + timeout_s
    delays = poll_delays(cap=1.0)
    while True:
        sandbox = get_sandbox_by_name(creds, name)
        status = sandbox.get("status")
        if status == "DEPLOYED":
            return sandbox
        if status == "FAILED":
            raise error_for_status(400, f"Blaxel sandbox {name} failed to deploy")
        if time.monotonic() > deadline:
            raise error_for_status(
                None, f"Blaxel sandbox {name} not deployed after {timeout_s:.0f}s (status {status})"
            )
        sleep(next(delays))


def wait_process_stopped(
    creds: BlaxelCredentials,
    sandbox_name: str,
    process: str,
    timeout_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until a process no longer runs (or is unknown), so its port is free again."""
    deadline = time.monotonic() + timeout_s
    delays = poll_delays(cap=0.2)
    while time.monotonic() < deadline:
        try:
            state = get_process(creds, sandbox_name, process)
        except NotFound:
            return
        if state.get("status") not in ("running", "starting"):
            return
        sleep(next(delays))


def list_process_names(creds: BlaxelCredentials, sandbox_name: str) -> list[str]:
    """Names of the running processes of a sandbox (none if the sandbox is gone); retried
    like every sandbox-API call (the first call after a standby may fail once)."""

    def once() -> list[Any]:
        sandbox = _instance(creds, sandbox_name)
        with _mapped(f"list processes in {sandbox_name}"):
            return list(sandbox.process.list())

    try:
        processes = with_retries(once)
    except NotFound:
        return []
    return [p.name for p in processes if str(p.status) in ("running", "starting")]


# Listing (worker cleanup at destroy)


def _all_pages(
    what: str, creds: BlaxelCredentials, fetch: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated listing, as dicts."""
    from blaxel.core.client.types import UNSET

    items: list[dict[str, Any]] = []
    cursor: Any = UNSET
    while True:
        page = _api(creds, what, _bound(fetch, cursor))
        items.extend(item.to_dict() for item in (page.data or []))
        meta = page.meta
        more = getattr(meta, "has_more", False) if meta else False
        nxt = getattr(meta, "next_cursor", "") if meta else ""
        if not more or not nxt or not isinstance(nxt, str):
            return items
        cursor = nxt


def _bound(fetch: Callable[[Any], Any], cursor: Any) -> Callable[[], Any]:
    return lambda: fetch(cursor)


def list_sandboxes(creds: BlaxelCredentials) -> list[dict[str, Any]]:
    """Every live sandbox of the workspace."""
    from blaxel.core.client.api.compute import list_sandboxes as api

    return _all_pages(
        "list sandboxes",
        creds,
        lambda cursor: api.sync_detailed(client=control_plane, cursor=cursor, limit=100),
    )


def list_volumes(creds: BlaxelCredentials) -> list[dict[str, Any]]:
    """Every volume of the workspace."""
    from blaxel.core.client.api.volumes import list_volumes as api

    return _all_pages(
        "list volumes",
        creds,
        lambda cursor: api.sync_detailed(client=control_plane, cursor=cursor, limit=100),
    )


def delete_volume_by_name(creds: BlaxelCredentials, name: str) -> None:
    """Delete a volume; already gone is success."""
    from blaxel.core.client.api.volumes import delete_volume

    try:
        _api(
            creds,
            f"delete volume {name}",
            lambda: delete_volume.sync_detailed(name, client=control_plane),
        )
    except NotFound:
        return


def get_volume_by_name(creds: BlaxelCredentials, name: str) -> dict[str, Any]:
    """A volume as the API returns it; NotFound when there is none of that name."""
    from blaxel.core.client.api.volumes import get_volume

    volume = _api(
        creds, f"get volume {name}", lambda: get_volume.sync_detailed(name, client=control_plane)
    )
    return dict(volume.to_dict())


def create_volume_from_spec(creds: BlaxelCredentials, body: dict[str, Any]) -> dict[str, Any]:
    """Create a volume (`{"metadata": {name, labels}, "spec": {size, region}}`)."""
    from blaxel.core.client.api.volumes import create_volume
    from blaxel.core.client.models import Volume

    model = _model(Volume, body)
    volume = _api(
        creds,
        f"create volume {body['metadata']['name']}",
        lambda: create_volume.sync_detailed(client=control_plane, body=model),
    )
    return dict(volume.to_dict())


def write_file(creds: BlaxelCredentials, sandbox_name: str, path: str, content: str) -> None:
    """Write a file in a sandbox through its filesystem API (parents created)."""
    _in_sandbox(creds, sandbox_name, f"write {path}", lambda s: s.fs.write(path, content))


def remove_file(creds: BlaxelCredentials, sandbox_name: str, path: str) -> None:
    """Remove a file in a sandbox; already gone (or the sandbox gone) is success."""
    try:
        _in_sandbox(creds, sandbox_name, f"remove {path}", lambda s: s.fs.rm(path))
    except NotFound:
        return
