"""Worker sandboxes for real: their lifecycle through the Blaxel SDK, with retries.

The only module that talks to Blaxel. The SDK keeps one process-wide client:
`configure_blaxel` points it at the configured control plane with the configured credentials
(no environment variable moves the base URL). Every SDK failure is mapped here, in
`as_blaxel_error`, to `BlaxelError` (transient or not); transient ones are retried with
exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from blaxel.core.authentication import ApiKey, CredentialsType
from blaxel.core.client.client import client as blaxel_client
from blaxel.core.common.settings import settings as blaxel_settings
from blaxel.core.errors import BlaxelError as SdkBlaxelError
from blaxel.core.sandbox import SandboxInstance
from blaxel.core.volume import VolumeInstance

from orchestrator_app.errors import BlaxelError, BlaxelNotFound
from orchestrator_app.settings import Settings
from orchestrator_app.workers import (
    ENVIRONMENT_LABEL,
    ROLE_LABEL,
    SESSION_LABEL,
    worker_sandbox_name,
    worker_sandbox_spec,
    worker_volume_spec,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Sandbox statuses gone for good (create replaces those).
DEAD_STATUSES = {"FAILED", "TERMINATED", "DELETING"}
# How long a superseded worker gets to stop its item after SIGTERM before it is killed.
WORKER_STOP_TIMEOUT_SECONDS = 10.0


def as_blaxel_error(exc: BaseException, action: str) -> BlaxelError | None:
    """Our `BlaxelError` for an SDK or network failure; None for anything else (a bug: the
    caller re-raises it as it is, with its traceback)."""
    if isinstance(exc, BlaxelError):
        return exc
    if isinstance(exc, httpx.TransportError | asyncio.TimeoutError | ConnectionError):
        return BlaxelError(f"{action}: {type(exc).__name__}", transient=True)
    if isinstance(exc, SdkBlaxelError):
        status = exc.status if isinstance(exc.status, int) else None
    elif isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    else:
        return None
    if status == 404:
        return BlaxelNotFound(f"{action}: 404 {exc}")
    transient = status is None or status >= 500 or status == 429
    if isinstance(exc, SdkBlaxelError) and exc.retryable is not None:
        transient = exc.retryable
    return BlaxelError(
        f"{action}: {status or ''} {exc}".strip(), transient=transient, status=status
    )


async def blaxel_call(call: Callable[[], Awaitable[T]], action: str) -> T:
    """`call()`, with SDK and network failures raised as our `BlaxelError` (bugs untouched)."""
    try:
        return await call()
    except Exception as exc:
        error = as_blaxel_error(exc, action)
        if error is None or error is exc:
            raise
        raise error from exc


async def with_retries(
    call: Callable[[], Awaitable[T]], *, action: str, retries: int, base_delay: float
) -> T:
    """Run `call`, retrying transient Blaxel failures with exponential backoff (base·2^n)."""
    attempt = 0
    while True:
        try:
            return await blaxel_call(call, action)
        except BlaxelError as error:
            if not error.transient or attempt >= retries:
                raise
            delay = base_delay * (2**attempt)
            log.warning(
                "transient Blaxel error, retrying",
                extra={
                    "action": action,
                    "attempt": attempt + 1,
                    "delay_s": delay,
                    "error": str(error),
                },
            )
            attempt += 1
            await asyncio.sleep(delay)


def configure_blaxel(settings: Settings) -> Callable[[], None]:
    """Point the SDK's process-wide client (control plane and sandbox APIs) at our workspace.

    Returns a function that puts the previous configuration back (the app calls it when it
    stops, so an app started inside a test leaves the SDK as it found it).
    """
    previous = (blaxel_client._base_url, blaxel_client._auth, blaxel_settings.auth)

    def restore() -> None:
        base_url, client_auth, settings_auth = previous
        blaxel_client.with_base_url(base_url)
        blaxel_client.with_auth(client_auth)
        blaxel_settings.auth = settings_auth

    workspace = settings.blaxel_workspace or ""
    api_key = settings.blaxel_api_key.get_secret_value() if settings.blaxel_api_key else ""
    auth = ApiKey(
        CredentialsType(api_key=api_key, workspace=workspace), workspace, settings.blaxel_url
    )
    blaxel_client.with_base_url(settings.blaxel_url)
    blaxel_client.with_auth(auth)
    # Sandbox API clients take their headers from the SDK settings' auth.
    blaxel_settings.auth = auth
    return restore


async def close_blaxel() -> None:
    """Close the SDK's control-plane client of this event loop (it never closes it itself)."""
    http = blaxel_client._async_client
    if http is not None:
        await http.aclose()
        blaxel_client._async_client = None
        blaxel_client._async_client_loop = None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every sandbox API client (loading the CA bundle costs ~40 ms of CPU)."""
    return httpx.create_ssl_context()


def _share_tls(instance: SandboxInstance) -> None:
    """Give the instance's process API the client the SDK would build, but with the shared TLS
    context: the SDK builds one client per instance, each loading the CA bundle again (once
    more per proxy set), most of the orchestrator's CPU in a burst (issue 16)."""
    action = instance.process
    config = action.sandbox_config
    headers = config.headers if config.force_url else {**blaxel_settings.headers, **config.headers}
    action._client = httpx.AsyncClient(
        base_url=config.force_url or action.url,
        headers=headers,
        verify=_tls_context(),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        timeout=httpx.Timeout(300.0, connect=10.0),
    )


async def _close_sandbox_clients(instance: SandboxInstance) -> None:
    # The SDK opens one HTTP client per sandbox action it is asked for and never closes it.
    action = instance.process
    if action._client is not None:
        await action._client.aclose()
        action._client = None


@contextlib.asynccontextmanager
async def _sandbox(name: str) -> AsyncIterator[SandboxInstance]:
    """A sandbox by name, its HTTP clients closed afterwards."""
    instance = await SandboxInstance.get(name)
    _share_tls(instance)
    try:
        yield instance
    finally:
        await _close_sandbox_clients(instance)


@dataclass(frozen=True)
class WorkerSandbox:
    """A worker sandbox of this environment, as the control plane lists it."""

    name: str
    session_id: str
    status: str


def _labels(instance: Any) -> dict[str, str]:
    labels: Any = getattr(instance.metadata, "labels", None)
    values = labels.to_dict() if hasattr(labels, "to_dict") else labels
    return {str(k): str(v) for k, v in (values or {}).items()}


class WorkerSandboxes:
    """Creates, readies, starts workers in and deletes worker sandboxes through the Blaxel SDK.

    Every object it touches carries this environment's `cma-environment-id` label: a sandbox or
    volume of another environment (same name, same workspace) is never used nor deleted.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def _retry(self, call: Callable[[], Awaitable[T]], action: str) -> T:
        return await with_retries(
            call,
            action=action,
            retries=self.settings.start_retries,
            base_delay=self.settings.retry_base_seconds,
        )

    def _ours(self, labels: dict[str, str]) -> bool:
        return (
            labels.get(ROLE_LABEL) == "worker"
            and labels.get(ENVIRONMENT_LABEL) == self.settings.environment_id
        )

    async def _get(self, name: str) -> SandboxInstance | None:
        try:
            return await blaxel_call(lambda: SandboxInstance.get(name), f"get sandbox {name}")
        except BlaxelNotFound:
            return None

    async def _create(self, session_id: str) -> SandboxInstance:
        with warnings.catch_warnings():
            # Without a region the SDK prints a once-per-process notice; the region is a setting.
            warnings.simplefilter("ignore", FutureWarning)
            if self.settings.worker_volume_size_mb:
                await VolumeInstance.create_if_not_exists(
                    worker_volume_spec(self.settings, session_id)
                )
            return await SandboxInstance.create_if_not_exists(
                worker_sandbox_spec(self.settings, session_id)
            )

    async def _free_name(self, name: str, instance: SandboxInstance, deadline: float) -> None:
        """Make a dead sandbox's name usable: delete a FAILED one (`createIfNotExist` returns a
        sandbox holding the name as it is, even FAILED), then wait out DELETING."""
        if instance.status == "FAILED":
            await self.delete(name)
        while True:
            current = await self._get(name)
            if current is None or current.status == "TERMINATED":
                return
            if asyncio.get_running_loop().time() > deadline:
                raise BlaxelError(f"sandbox {name} is still {current.status}", transient=False)
            await asyncio.sleep(0.5)

    async def ensure_ready(self, session_id: str) -> str:
        """Make sure the session's worker sandbox exists and answers; returns its name."""
        name = worker_sandbox_name(session_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.sandbox_ready_timeout_seconds

        async def once() -> SandboxInstance:
            instance = await self._get(name)
            if instance is not None and not self._ours(_labels(instance)):
                raise BlaxelError(
                    f"sandbox {name} exists but belongs to another environment", transient=False
                )
            if instance is not None and instance.status in DEAD_STATUSES:
                log.warning(
                    "worker sandbox is dead; replacing it",
                    extra={"session_id": session_id, "sandbox": name, "status": instance.status},
                )
                await self._free_name(name, instance, deadline)
                instance = None
            if instance is None:
                instance = await self._create(session_id)
            if instance.status in DEAD_STATUSES:
                # It died while we made it: the next attempt deletes and recreates it.
                raise BlaxelError(f"sandbox {name} is {instance.status}", transient=True)
            return instance

        # Ready means its own API answers. No status poll before that: the platform holds a
        # DEPLOYING sandbox's first calls until it is ready (docs/platform-contract.md B6), and
        # the first call after standby may fail (retried). Polling the control plane every
        # 0.1 s meanwhile was 20 calls a session, most of a 200-session burst's CPU (issue 16).
        async def reach() -> None:
            async with _sandbox(name) as fresh:
                await fresh.process.list()

        await self._retry(once, f"create sandbox {name}")
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._retry(reach, f"reach sandbox {name}")
                return name
            except (BlaxelError, TimeoutError) as exc:
                # Still deploying past the platform's hold, or dead while it deployed?
                current = await self._retry(lambda: self._get(name), f"get sandbox {name}")
                status = current.status if current is not None else "gone"
                if loop.time() > deadline:
                    raise BlaxelError(f"sandbox {name} is still {status}", transient=False) from exc
                if current is not None and status not in DEAD_STATUSES:
                    if status != "DEPLOYING" or (
                        isinstance(exc, BlaxelError) and not exc.transient
                    ):
                        raise  # deployed but its API fails: not ready (logged, retried later)
                    continue  # still deploying past the platform's hold: asked again
                await self._retry(once, f"create sandbox {name}")

    async def start_worker(self, sandbox_name: str, request: dict[str, Any]) -> bool:
        """Start the worker process unless it already runs; True when this call started it.

        One worker process per sandbox (hence per session): a process of the same name (the
        same work item, e.g. reclaimed while its worker still runs) is left running and no
        second one starts; a worker of an older item is stopped first (the newest item wins).
        """
        attempts = 0
        started_now = False

        async def once() -> None:
            nonlocal attempts, started_now
            attempts += 1
            async with _sandbox(sandbox_name) as instance:
                processes = await instance.process.list()
                same = [p for p in processes if p.name == request["name"]]
                if same and attempts > 1:
                    # Our last attempt started it and only its answer was lost: no second one.
                    started_now = True
                    return
                if same and str(same[0].status) == "running":
                    return  # already running for this item: no second worker
                for process in processes:
                    if process.name.startswith("worker-") and str(process.status) == "running":
                        await self._stop_process(instance, process.name)
                started = await instance.process.exec(request)
            if str(started.status) == "failed":
                raise BlaxelError(
                    f"worker process in {sandbox_name} failed at start (exit {started.exit_code})",
                    transient=False,
                )
            started_now = True

        await self._retry(once, f"start worker in {sandbox_name}")
        return started_now

    async def _stop_process(self, instance: SandboxInstance, name: str) -> None:
        """SIGTERM a superseded worker (its SDK then stops its item) and wait for its end."""
        # `process` is a LogRecord attribute (the pid): a log extra of that name raises KeyError.
        log.info("stopping a superseded worker", extra={"worker_process": name})
        await instance.process.stop(name)
        deadline = asyncio.get_running_loop().time() + WORKER_STOP_TIMEOUT_SECONDS
        # `process.list()`, not `process.get()`: the latter's generated client leaves a
        # connection unclosed once the SDK's client is closed.
        while await self._is_running(instance, name):
            if asyncio.get_running_loop().time() > deadline:
                await instance.process.kill(name)
                return
            await asyncio.sleep(0.2)

    @staticmethod
    async def _is_running(instance: SandboxInstance, name: str) -> bool:
        processes = await instance.process.list()
        return any(p.name == name and str(p.status) == "running" for p in processes)

    async def running_worker(self, sandbox_name: str) -> str | None:
        """The name of a worker process running in the sandbox; None if none (or no sandbox)."""

        async def once() -> str | None:
            async with _sandbox(sandbox_name) as instance:
                processes = await instance.process.list()
            running = [
                p.name
                for p in processes
                if p.name.startswith("worker-") and str(p.status) == "running"
            ]
            return running[0] if running else None

        try:
            return await self._retry(once, f"list processes of {sandbox_name}")
        except BlaxelNotFound:
            return None

    async def delete(self, sandbox_name: str) -> None:
        """Delete a worker sandbox; one that is already gone counts as deleted."""
        with contextlib.suppress(BlaxelNotFound):
            await self._retry(
                lambda: SandboxInstance.delete(sandbox_name), f"delete sandbox {sandbox_name}"
            )

    async def delete_volume(self, volume_name: str) -> None:
        """Delete a worker volume; one that is already gone counts as deleted."""
        with contextlib.suppress(BlaxelNotFound):
            await self._retry(
                lambda: VolumeInstance.delete(volume_name), f"delete volume {volume_name}"
            )

    async def owned(self, sandbox_name: str) -> bool:
        """Whether the sandbox exists and is a worker sandbox of this environment."""
        instance = await self._retry(lambda: self._get(sandbox_name), f"get {sandbox_name}")
        return instance is not None and self._ours(_labels(instance))

    async def list_workers(self) -> list[WorkerSandbox]:
        """Every worker sandbox of this environment (others' are skipped by their label)."""

        async def once() -> list[WorkerSandbox]:
            found = []
            page = await SandboxInstance.list(limit=100)
            async for instance in page.auto_paging_iter():
                labels = _labels(instance)
                if self._ours(labels) and labels.get(SESSION_LABEL):
                    found.append(
                        WorkerSandbox(
                            str(instance.metadata.name),
                            labels[SESSION_LABEL],
                            str(instance.status),
                        )
                    )
            return found

        return await self._retry(once, "list worker sandboxes")

    async def list_worker_volumes(self) -> list[tuple[str, str]]:
        """(volume name, session id) of every worker volume of this environment."""

        async def once() -> list[tuple[str, str]]:
            found = []
            page = await VolumeInstance.list(limit=100)
            async for volume in page.auto_paging_iter():
                labels = _labels(volume)
                if self._ours(labels) and labels.get(SESSION_LABEL):
                    found.append((str(volume.metadata.name), labels[SESSION_LABEL]))
            return found

        return await self._retry(once, "list worker volumes")

    async def probe(self) -> None:
        """One cheap authenticated control-plane call, for `/ready`."""
        await blaxel_call(lambda: SandboxInstance.list(limit=1), "list sandboxes")
