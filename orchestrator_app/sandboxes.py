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
import logging
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

from orchestrator_app.errors import BlaxelError
from orchestrator_app.settings import Settings
from orchestrator_app.workers import (
    ENVIRONMENT_LABEL,
    ROLE_LABEL,
    SESSION_LABEL,
    worker_sandbox_name,
    worker_sandbox_spec,
    worker_volume_name,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Sandbox statuses: usable now, or gone for good (create replaces those).
READY_STATUSES = {"DEPLOYED", "STANDBY"}
DEAD_STATUSES = {"FAILED", "TERMINATED", "DELETING"}
ENDED_PROCESS_STATUSES = {"completed", "failed", "killed", "stopped"}


def as_blaxel_error(exc: BaseException, action: str) -> BlaxelError:
    """One mapping from whatever the SDK raised to our `BlaxelError` (transient or not)."""
    if isinstance(exc, BlaxelError):
        return exc
    if isinstance(exc, httpx.TransportError | asyncio.TimeoutError | ConnectionError):
        return BlaxelError(f"{action}: {type(exc).__name__}", transient=True)
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    transient = status is None or status >= 500 or status == 429
    if isinstance(exc, SdkBlaxelError) and exc.retryable is not None:
        transient = exc.retryable
    return BlaxelError(
        f"{action}: {status or ''} {exc}".strip(), transient=transient, status=status
    )


async def with_retries(
    call: Callable[[], Awaitable[T]], *, action: str, retries: int, base_delay: float
) -> T:
    """Run `call`, retrying transient Blaxel failures with exponential backoff (base·2^n)."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            error = as_blaxel_error(exc, action)
            if not error.transient or attempt >= retries:
                raise error from exc
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
    try:
        yield instance
    finally:
        await _close_sandbox_clients(instance)


@dataclass
class ProcessState:
    """What the orchestrator needs to know of a worker process."""

    status: str  # running, completed, failed, killed, stopped, missing

    @property
    def ended(self) -> bool:
        return self.status in ENDED_PROCESS_STATUSES or self.status == "missing"


class WorkerSandboxes:
    """Creates, readies, starts workers in and deletes worker sandboxes through the Blaxel SDK."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def _retry(self, call: Callable[[], Awaitable[T]], action: str) -> T:
        return await with_retries(
            call,
            action=action,
            retries=self.settings.start_retries,
            base_delay=self.settings.retry_base_seconds,
        )

    async def _get(self, name: str) -> SandboxInstance | None:
        try:
            return await SandboxInstance.get(name)
        except Exception as exc:
            error = as_blaxel_error(exc, f"get sandbox {name}")
            if error.status == 404:
                return None
            raise error from exc

    async def _create(self, session_id: str) -> SandboxInstance:
        with warnings.catch_warnings():
            # Without a region the SDK prints a once-per-process notice; the region is a setting.
            warnings.simplefilter("ignore", FutureWarning)
            if self.settings.worker_volume_size_mb:
                await VolumeInstance.create_if_not_exists(
                    {
                        "name": worker_volume_name(session_id),
                        "size": self.settings.worker_volume_size_mb,
                        "region": self.settings.worker_region,
                        "labels": {SESSION_LABEL: session_id, ROLE_LABEL: "worker-volume"},
                    }
                )
            return await SandboxInstance.create_if_not_exists(
                worker_sandbox_spec(self.settings, session_id)
            )

    async def ensure_ready(self, session_id: str) -> str:
        """Make sure the session's worker sandbox exists and answers; returns its name."""
        name = worker_sandbox_name(session_id)
        deadline = asyncio.get_running_loop().time() + self.settings.sandbox_ready_timeout_seconds

        async def once() -> SandboxInstance:
            instance = await self._get(name)
            if instance is None or instance.status in DEAD_STATUSES:
                instance = await self._create(session_id)
            return instance

        instance = await self._retry(once, f"create sandbox {name}")
        while instance.status not in READY_STATUSES:
            if instance.status in DEAD_STATUSES or asyncio.get_running_loop().time() > deadline:
                raise BlaxelError(f"sandbox {name} is {instance.status}", transient=False)
            await asyncio.sleep(0.5)
            instance = await self._retry(lambda: SandboxInstance.get(name), f"get sandbox {name}")

        # Ready means its own API answers (the first call after standby may fail: retried).
        async def reach() -> None:
            async with _sandbox(name) as fresh:
                await fresh.process.list()

        await self._retry(reach, f"reach sandbox {name}")
        return name

    async def start_worker(self, sandbox_name: str, request: dict[str, Any]) -> None:
        """Start the worker process; raises BlaxelError when it cannot be started."""

        attempts = 0

        async def once() -> None:
            nonlocal attempts
            attempts += 1
            async with _sandbox(sandbox_name) as instance:
                if attempts > 1 and await self._already_started(instance, request["name"]):
                    # The last attempt started it and only its answer was lost: no second worker.
                    return
                started = await instance.process.exec(request)
            if started.status == "failed":
                raise BlaxelError(
                    f"worker process in {sandbox_name} failed at start (exit {started.exit_code})",
                    transient=False,
                )

        await self._retry(once, f"start worker in {sandbox_name}")

    @staticmethod
    async def _already_started(instance: SandboxInstance, process_name: str) -> bool:
        """Whether a process of this name exists (one name per work item: then it was started)."""
        try:
            await instance.process.get(process_name)
        except Exception as exc:
            if as_blaxel_error(exc, "get process").status == 404:
                return False
            raise
        return True

    async def process_state(self, sandbox_name: str, process_name: str) -> ProcessState:
        """The worker process's status; 'missing' when it or its sandbox is gone."""
        instance = await self._get(sandbox_name)
        if instance is None or instance.status in DEAD_STATUSES:
            return ProcessState("missing")
        try:
            process = await instance.process.get(process_name)
        except Exception as exc:
            error = as_blaxel_error(exc, f"get process {process_name}")
            if error.status == 404:
                return ProcessState("missing")
            raise error from exc
        finally:
            await _close_sandbox_clients(instance)
        return ProcessState(str(process.status))

    async def delete(self, sandbox_name: str) -> None:
        """Delete a worker sandbox; one that is already gone counts as deleted."""

        async def once() -> None:
            try:
                await SandboxInstance.delete(sandbox_name)
            except Exception as exc:
                error = as_blaxel_error(exc, f"delete sandbox {sandbox_name}")
                if error.status != 404:
                    raise error from exc

        await self._retry(once, f"delete sandbox {sandbox_name}")

    async def list_workers(self) -> list[tuple[str, str]]:
        """(sandbox name, session id) of every worker sandbox of this environment."""

        async def once() -> list[tuple[str, str]]:
            found = []
            page = await SandboxInstance.list(limit=100)
            async for instance in page.auto_paging_iter():
                labels: Any = getattr(instance.metadata, "labels", None)
                values = labels.to_dict() if hasattr(labels, "to_dict") else {}
                if (
                    values.get(ROLE_LABEL) == "worker"
                    and values.get(ENVIRONMENT_LABEL) == self.settings.environment_id
                    and values.get(SESSION_LABEL)
                ):
                    found.append((str(instance.metadata.name), str(values[SESSION_LABEL])))
            return found

        return await self._retry(once, "list worker sandboxes")

    async def running_worker(self, sandbox_name: str) -> str | None:
        """The name of a worker process still running in the sandbox, if any."""

        async def once() -> str | None:
            async with _sandbox(sandbox_name) as instance:
                processes = await instance.process.list()
            running = [
                p.name for p in processes if p.name.startswith("worker-") and p.status == "running"
            ]
            return running[0] if running else None

        return await self._retry(once, f"list processes of {sandbox_name}")

    async def probe(self) -> None:
        """One cheap authenticated control-plane call, for `/ready`."""
        try:
            await SandboxInstance.list(limit=1)
        except Exception as exc:
            raise as_blaxel_error(exc, "list sandboxes") from exc
