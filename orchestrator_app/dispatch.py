"""Dispatch: warm each session's worker sandbox, then claim its work, then start its worker.

Webhooks and the recovery poll only *request* a drain; one drainer task runs the drains one
after another, so a burst of deliveries collapses into one or two drains. A drain:

1. lists this environment's claimable work (the environment key sees only its own queue, so
   another environment's session never shows up and nothing is claimed for it);
2. makes sure each of those sessions' worker sandboxes exists and answers, in parallel,
   bounded by `max_concurrent_starts` (a sandbox that cannot be made ready leaves the work
   unclaimed, for a later drain);
3. polls and acks (claims) items one by one, and starts each item's worker process in its
   session's sandbox with only the item's coordinates and per-item secret. A claimed item whose
   worker cannot be started is force-stopped and the reason logged.

The reaper deletes a worker sandbox once its worker process has ended and the sandbox has been
idle for `worker_idle_delete_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from anthropic import APIError, APIStatusError, AsyncAnthropic
from anthropic.types.beta.environments import BetaSelfHostedWork

from orchestrator_app.errors import BlaxelError
from orchestrator_app.metrics import Metrics
from orchestrator_app.sandboxes import WorkerSandboxes
from orchestrator_app.settings import Settings
from orchestrator_app.workers import (
    worker_process_env,
    worker_process_name,
    worker_process_request,
)

log = logging.getLogger(__name__)

SEEN_WEBHOOKS_MAX = 10_000
LIST_LIMIT = 1_000


def is_claimable(item: BetaSelfHostedWork) -> bool:
    """Work that nobody has acknowledged yet (queued, or polled and never acked)."""
    return item.state == "queued" or (item.state == "starting" and item.acknowledged_at is None)


class WorkQueue:
    """This environment's work queue, through the SDK, authenticated by the environment key."""

    def __init__(self, client: AsyncAnthropic, environment_id: str) -> None:
        self.client = client
        self.environment_id = environment_id
        self.worker_id = f"orchestrator-{socket.gethostname()}"

    @property
    def _work(self) -> Any:
        return self.client.beta.environments.work

    async def claimable(self) -> tuple[list[str], bool]:
        """Session ids with claimable work here (oldest first, no repeats), and whether other
        claimable items (health checks, kinds we do not run) are queued too."""
        sessions: dict[str, None] = {}
        others = False
        count = 0
        async for item in self._work.list(self.environment_id, limit=100):
            count += 1
            if is_claimable(item):
                if item.data.type == "session":
                    sessions.setdefault(item.data.id, None)
                else:
                    others = True
            if count >= LIST_LIMIT:
                break
        return list(sessions), others

    async def poll(self) -> BetaSelfHostedWork | None:
        """One non-blocking poll: the next item (not yet acked), or None when empty."""
        result: BetaSelfHostedWork | None = await self._work.poll(
            self.environment_id, anthropic_worker_id=self.worker_id
        )
        return result

    async def ack(self, item: BetaSelfHostedWork) -> None:
        await self._work.ack(item.id, environment_id=self.environment_id)

    async def stop(self, item: BetaSelfHostedWork) -> None:
        """Force-stop an item we cannot serve; 'already stopped' (409) is fine."""
        try:
            await self._work.stop(item.id, environment_id=self.environment_id, force=True)
        except APIStatusError as exc:
            if exc.status_code != 409:
                raise


@dataclass
class WorkerRecord:
    """A worker this orchestrator started, until its sandbox is deleted."""

    sandbox: str
    process: str
    work_id: str
    ended_at: float | None = None


@dataclass
class DispatchStats:
    """Counters, for tests and debugging."""

    drains: int = 0
    accepted: int = 0
    claimed: int = 0
    started: int = 0
    stopped: int = 0
    deleted: int = 0
    duplicates: int = 0


class Dispatcher:
    """Owns the drainer task, the in-flight sessions and the workers it started."""

    def __init__(self, settings: Settings, queue: WorkQueue, sandboxes: WorkerSandboxes) -> None:
        self.settings = settings
        self.queue = queue
        self.sandboxes = sandboxes
        self.workers: dict[str, WorkerRecord] = {}
        self.stats = DispatchStats()
        self.metrics = Metrics()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._wake = asyncio.Event()
        self._starts = asyncio.Semaphore(settings.max_concurrent_starts)
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ entry points

    def notify(self, session_id: str, webhook_id: str) -> bool:
        """A verified run-started event arrived; False when it is a duplicate delivery."""
        if webhook_id in self._seen or session_id in self._in_flight:
            self.stats.duplicates += 1
            log.info(
                "duplicate delivery ignored",
                extra={"session_id": session_id, "webhook_id": webhook_id},
            )
            return False
        self._seen[webhook_id] = None
        while len(self._seen) > SEEN_WEBHOOKS_MAX:
            self._seen.popitem(last=False)
        self._in_flight.add(session_id)
        self.stats.accepted += 1
        self.request_drain()
        return True

    def request_drain(self) -> None:
        """Ask the drainer for one more drain (many requests before it runs count as one)."""
        self._wake.set()

    async def run(self) -> None:
        """The drainer: one drain per wake-up, forever (cancelled at shutdown)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except APIError as exc:
                self.metrics.failures.labels("drain_failed").inc()
                # The API said no (or was unreachable): one line, no traceback, retried later.
                log.error(
                    "drain failed; the next webhook or recovery poll retries it",
                    extra={"reason": str(exc)},
                )
            except Exception:
                self.metrics.failures.labels("drain_failed").inc()
                log.exception("drain failed; the next webhook or recovery poll retries it")

    async def shutdown(self) -> None:
        """Cancel the worker starts still running."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------ the drain

    async def drain(self) -> None:
        """Warm the sandboxes of every session with claimable work, then claim and start."""
        self.stats.drains += 1
        self.metrics.drains.inc()
        hinted = set(self._in_flight) - set(self._starting_sessions())
        sessions: list[str] = []
        try:
            sessions, others = await self.queue.claimable()
            # In flight while this drain prepares them: no duplicate start, no reaping.
            self._in_flight.update(sessions)
            for session_id in hinted - set(sessions):
                # Another environment's session (a workspace webhook fires for all of them), or
                # work already claimed: nothing to do for it here.
                log.info(
                    "no claimable work for this session in this environment",
                    extra={"session_id": session_id},
                )
            if not sessions and not others:
                return
            warm = await asyncio.gather(*(self._warm(s) for s in sessions))
            ready = {s: name for s, name in zip(sessions, warm, strict=True) if name}
            if not ready and not others:
                # Claim nothing we could not serve: the work stays queued for a later drain.
                log.warning(
                    "no worker sandbox ready; nothing claimed", extra={"sessions": sessions}
                )
                return
            await self._claim_all(ready, tried=set(sessions))
            for session_id, sandbox in ready.items():
                self._note_idle(session_id, sandbox)
        finally:
            # Sessions that got no worker this time are no longer in flight.
            self._in_flight -= (hinted | set(sessions)) - set(self._starting_sessions())

    def _note_idle(self, session_id: str, sandbox: str) -> None:
        """A ready sandbox with no worker starting: the reaper deletes it once idle long enough."""
        if session_id not in self.workers and session_id not in self._starting_sessions():
            loop_time = asyncio.get_running_loop().time()
            self.workers[session_id] = WorkerRecord(sandbox, "", "", ended_at=loop_time)

    async def _claim_all(self, ready: dict[str, str], tried: set[str]) -> None:
        """Poll and ack items whose session's sandbox is ready; leave the others unclaimed."""
        polled: set[str] = set()
        while True:
            item = await self.queue.poll()
            if item is None or item.id in polled:
                return
            polled.add(item.id)
            if item.data.type != "session":
                # Health checks and unknown kinds: nothing to run, release them at once.
                if await self._ack(item):
                    await self._stop_quietly(item)
                continue
            session_id = item.data.id
            if session_id not in ready and session_id not in tried:
                # Work queued after the listing: warm its sandbox now, before acking.
                tried.add(session_id)
                sandbox = await self._warm(session_id)
                if sandbox:
                    ready[session_id] = sandbox
            if session_id not in ready:
                # Polled but not acked: the queue offers it again after the reclaim window.
                log.warning(
                    "work left unclaimed: its worker sandbox is not ready",
                    extra={"session_id": session_id, "work_id": item.id},
                )
                continue
            if not await self._ack(item):
                continue
            self.stats.claimed += 1
            log.info("work claimed", extra={"session_id": session_id, "work_id": item.id})
            self._in_flight.add(session_id)
            task = asyncio.create_task(self._start(item, ready[session_id]))
            task.set_name(f"start:{session_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ack(self, item: BetaSelfHostedWork) -> bool:
        """Claim the item; False (logged) when the queue refuses, e.g. another worker took it."""
        try:
            await self.queue.ack(item)
        except APIError as exc:
            self.metrics.failures.labels("ack_refused").inc()
            log.warning(
                "ack refused; work left to the queue",
                extra={"work_id": item.id, "reason": str(exc)},
            )
            return False
        return True

    def _starting_sessions(self) -> list[str]:
        return [t.get_name().removeprefix("start:") for t in self._tasks if not t.done()]

    async def _warm(self, session_id: str) -> str | None:
        """The session's ready sandbox name, or None (logged) when it cannot be made ready."""
        try:
            async with self._starts:
                return await self.sandboxes.ensure_ready(session_id)
        except BlaxelError as exc:
            self.metrics.failures.labels("sandbox_not_ready").inc()
            log.error(
                "worker sandbox not ready", extra={"session_id": session_id, "reason": str(exc)}
            )
            return None

    async def _start(self, item: BetaSelfHostedWork, sandbox: str) -> None:
        session_id = item.data.id
        try:
            if not item.secret:
                raise BlaxelError("the work item carried no per-item secret", transient=False)
            env = worker_process_env(
                base_url=self.settings.anthropic_url,
                environment_id=item.environment_id,
                session_id=session_id,
                work_id=item.id,
                work_secret=item.secret,
            )
            async with self._starts:
                await self.sandboxes.start_worker(
                    sandbox, worker_process_request(self.settings, env, item.id)
                )
            self.workers[session_id] = WorkerRecord(sandbox, worker_process_name(item.id), item.id)
            self.stats.started += 1
            self.metrics.observe_dispatch(item.created_at)
            log.info(
                "worker started",
                extra={"session_id": session_id, "work_id": item.id, "sandbox": sandbox},
            )
        except Exception as exc:
            self.metrics.failures.labels("worker_start_failed").inc()
            log.error(
                "claimed work cannot be served; stopping it",
                extra={"session_id": session_id, "work_id": item.id, "reason": str(exc)},
            )
            await self._stop_quietly(item)
            # Its sandbox now idles: the reaper deletes it like any other.
            ended = asyncio.get_running_loop().time()
            self.workers[session_id] = WorkerRecord(sandbox, "", item.id, ended_at=ended)
        finally:
            self._in_flight.discard(session_id)

    async def _stop_quietly(self, item: BetaSelfHostedWork) -> None:
        try:
            await self.queue.stop(item)
            self.stats.stopped += 1
        except Exception as exc:
            self.metrics.failures.labels("stop_failed").inc()
            log.error("force-stop failed", extra={"work_id": item.id, "reason": str(exc)})

    # ------------------------------------------------------------ the reaper

    async def reap_once(self, now: float | None = None) -> None:
        """Note workers that ended; delete sandboxes idle for long enough since."""
        now = asyncio.get_running_loop().time() if now is None else now
        for session_id, record in list(self.workers.items()):
            if session_id in self._in_flight:
                continue
            try:
                if record.ended_at is None:
                    state = await self.sandboxes.process_state(record.sandbox, record.process)
                    if state.ended:
                        record.ended_at = now
                        log.info(
                            "worker ended", extra={"session_id": session_id, "status": state.status}
                        )
                if (
                    record.ended_at is not None
                    and now - record.ended_at >= self.settings.worker_idle_delete_seconds
                    and session_id not in self._in_flight  # a drain may have claimed it meanwhile
                ):
                    await self.sandboxes.delete(record.sandbox)
                    if self.workers.get(session_id) is record:
                        del self.workers[session_id]
                    self.stats.deleted += 1
                    self.metrics.sandboxes_deleted.inc()
                    log.info(
                        "worker sandbox deleted",
                        extra={"session_id": session_id, "sandbox": record.sandbox},
                    )
            except BlaxelError as exc:
                log.warning(
                    "reaper could not check a worker",
                    extra={"session_id": session_id, "reason": str(exc)},
                )

    async def adopt_orphans(self) -> None:
        """Track worker sandboxes this process did not start (left by a previous orchestrator
        process, e.g. before a restart), so they are deleted once idle like any other."""
        now = asyncio.get_running_loop().time()
        for sandbox, session_id in await self.sandboxes.list_workers():
            if session_id in self.workers or session_id in self._in_flight:
                continue
            process = await self.sandboxes.running_worker(sandbox)
            if session_id in self.workers or session_id in self._in_flight:
                continue  # a drain took it over while we looked
            ended_at = None if process else now
            self.workers[session_id] = WorkerRecord(sandbox, process or "", "", ended_at=ended_at)
            log.info(
                "adopted worker sandbox",
                extra={"session_id": session_id, "sandbox": sandbox, "running": bool(process)},
            )

    async def reap_forever(self) -> None:
        """Adopt orphans at start and every `orphan_scan_seconds`; reap every interval."""
        next_scan = 0.0
        while True:
            loop_time = asyncio.get_running_loop().time()
            try:
                if loop_time >= next_scan:
                    next_scan = loop_time + self.settings.orphan_scan_seconds
                    await self.adopt_orphans()
                await self.reap_once()
            except Exception:
                log.exception("reaper pass failed")
            await asyncio.sleep(self.settings.reap_interval_seconds)
