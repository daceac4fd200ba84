"""Dispatch: for each session with queued work, warm its worker sandbox, claim, start its worker.

Webhooks and the recovery poll only *request* a drain; one drainer task runs the drains one
after another. A drain lists this environment's claimable work (the environment key sees only
its own queue, so another environment's session never shows up and nothing is claimed for it)
and hands each session to its own task. In poll mode (`ORCH_DISPATCH_MODE=poll`, issue 18) a
long-poll loop (`poll_forever`) takes the webhook's place: each item it polls goes the way of
the items a drain polls (`_stash`), so the claim discipline below is the same in both modes.
Sessions run as a pipeline: each goes warm → claim → start on its own as soon as its sandbox is
ready, bounded by `max_concurrent_starts`, and no session waits for another's warm-up.

Session state, said once: **a session id has at most one task in `_tasks`, and only that task
touches the session's sandbox** (a dispatch: warm → claim → start; or an end: release and
delete). `_tasks` changes only in `_schedule` and in the task's own done-callback.

Claiming (docs/contracts.md, DESIGN §3): an item is acked only once its session's sandbox is
ready; a polled item for a session still warming waits (leased, un-acked) in `_polled` for that
session's task. A claimed item whose worker cannot be started is *not* stopped (a stop before
the first heartbeat can strand the session): its lease lapses and the recovery poll serves it.
Only terminal cases are force-stopped: non-session items, older duplicates of a session's item,
items of an ended session, and items whose secret carries no sessions token (unless the
operator enabled the environment-key fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from anthropic import APIError, APIStatusError, AsyncAnthropic, NotFoundError
from anthropic.types.beta.environments import BetaSelfHostedWork

from orchestrator_app.errors import BlaxelError
from orchestrator_app.metrics import Metrics
from orchestrator_app.sandboxes import WorkerSandboxes
from orchestrator_app.settings import Settings
from orchestrator_app.workers import (
    sessions_token_of,
    worker_process_env,
    worker_process_name,
    worker_process_request,
    worker_sandbox_name,
    worker_volume_name,
)

log = logging.getLogger(__name__)

LIST_LIMIT = 1_000
PAGE_LIMIT = 100  # the API's largest page
LIVE_STATES = ("queued", "starting", "active")
# Poll mode: after a failed poll, wait this long, doubling up to the cap, then poll again.
POLL_BACKOFF_SECONDS = 0.5
POLL_BACKOFF_MAX_SECONDS = 15.0
# At most one drain begins per this interval; requests in between coalesce into the next. A
# drain lists the whole queue: at 200 deliveries a second they ran back to back, taking CPU
# from the sessions' own calls (issue 16); 0.1 s is nothing next to a sandbox's creation.
DRAIN_SPACING_SECONDS = 0.1
# And after a drain that took d seconds, at least DRAIN_REST_FACTOR * d pass before the next:
# a drain's cost grows with the queue it lists (200 items: most of the dispatch thread's
# time in a burst, and the GIL the webhook answers need), so drains take at most a fifth of
# the loop however long the queue, and a short queue still drains every 0.1 s.
DRAIN_REST_FACTOR = 4.0
SessionStatus = Literal["running", "idle", "rescheduling", "ended"]


def drain_rest(took: float) -> float:
    """How long the drainer waits after a drain that took `took` seconds (pure)."""
    return max(DRAIN_SPACING_SECONDS - took, DRAIN_REST_FACTOR * took, 0.0)


@dataclass(frozen=True)
class ListedWork:
    """What a drain reads of a listed work item (the API's `BetaSelfHostedWork` fields of the
    same names; `kind` and `session_id` are its `data.type` and `data.id`)."""

    id: str
    state: str
    acknowledged_at: str | None
    kind: str
    session_id: str | None


def listed_work(entry: Mapping[str, Any]) -> ListedWork:
    """One listed item from its JSON (pure); a field missing or mistyped reads as absent."""
    data = entry.get("data")
    data = data if isinstance(data, Mapping) else {}

    def text(node: Mapping[str, Any], name: str) -> str | None:
        value = node.get(name)
        return value if isinstance(value, str) else None

    return ListedWork(
        id=text(entry, "id") or "",
        state=text(entry, "state") or "",
        acknowledged_at=text(entry, "acknowledged_at"),
        kind=text(data, "type") or "",
        session_id=text(data, "id"),
    )


def listed_page(body: object) -> tuple[list[ListedWork], str | None]:
    """A list page's items and the cursor of the next page (None on the last), pure."""
    if not isinstance(body, Mapping):
        raise ValueError("work list answer is not a JSON object")
    entries = body.get("data") or []
    cursor = body.get("next_page")
    items = [listed_work(e) for e in entries if isinstance(e, Mapping)]
    return items, cursor if isinstance(cursor, str) and cursor else None


def is_claimable(item: ListedWork) -> bool:
    """Work that nobody has acknowledged yet (queued, or polled and never acked)."""
    return item.state == "queued" or (item.state == "starting" and item.acknowledged_at is None)


class WorkQueue:
    """This environment's work queue and sessions, through the SDK, with the environment key."""

    def __init__(self, client: AsyncAnthropic, environment_id: str) -> None:
        self.client = client
        self.environment_id = environment_id
        self.worker_id = f"orchestrator-{socket.gethostname()}"

    @property
    def _work(self) -> Any:
        return self.client.beta.environments.work

    async def _items(self) -> list[ListedWork]:
        """Every listed item (up to LIST_LIMIT), page by page through the SDK, read from each
        page's JSON: a drain lists the whole queue several times a second in a burst, and the
        SDK's models for 200 items took a fifth of the dispatch thread's time (issue 16)."""
        items: list[ListedWork] = []
        cursor: str | None = None
        while len(items) < LIST_LIMIT:
            raw = await self._work.with_raw_response.list(
                self.environment_id, limit=PAGE_LIMIT, **({"page": cursor} if cursor else {})
            )
            listed, cursor = listed_page(await raw.json())
            items += listed
            if not cursor:
                break
        return items[:LIST_LIMIT]

    async def claimable(self) -> tuple[list[str], bool]:
        """Session ids with claimable work here (oldest first, no repeats), and whether other
        claimable items (health checks, kinds we do not run) are queued too."""
        sessions: dict[str, None] = {}
        others = False
        for item in await self._items():
            if is_claimable(item):
                if item.kind == "session" and item.session_id:
                    sessions.setdefault(item.session_id, None)
                else:
                    others = True
        return list(sessions), others

    async def live_items(self, session_id: str) -> list[ListedWork]:
        """The session's items still queued or leased."""
        return [
            i
            for i in await self._items()
            if i.kind == "session" and i.session_id == session_id and i.state in LIVE_STATES
        ]

    async def poll(self, block_ms: int | None = None) -> BetaSelfHostedWork | None:
        """One poll: the next item (not yet acked), or None when empty; with `block_ms`, the
        server holds an empty poll open that long (1..999) for an item to arrive."""
        result: BetaSelfHostedWork | None = await self._work.poll(
            self.environment_id,
            anthropic_worker_id=self.worker_id,
            **({"block_ms": block_ms} if block_ms is not None else {}),
        )
        return result

    async def ack(self, item: BetaSelfHostedWork) -> None:
        await self._work.ack(item.id, environment_id=self.environment_id)

    async def stop(self, item: BetaSelfHostedWork | ListedWork) -> None:
        """Force-stop an item we must not serve; 'already stopped' (409) is fine."""
        try:
            await self._work.stop(item.id, environment_id=self.environment_id, force=True)
        except APIStatusError as exc:
            if exc.status_code != 409:
                raise

    async def session_status(self, session_id: str) -> SessionStatus:
        """The session's status; 'ended' when terminated, archived or gone."""
        try:
            session = await self.client.beta.sessions.retrieve(session_id)
        except NotFoundError:
            return "ended"
        if session.status == "terminated" or session.archived_at is not None:
            return "ended"
        status: SessionStatus = session.status
        return status


@dataclass(frozen=True)
class WorkerRecord:
    """A worker process this orchestrator started (or found running) for a session."""

    sandbox: str
    process: str
    work_id: str


@dataclass
class DispatchStats:
    """Counters, for tests, `/status` and debugging."""

    drains: int = 0
    accepted: int = 0
    claimed: int = 0
    started: int = 0
    stopped: int = 0
    deleted: int = 0
    duplicates: int = 0


TaskKind = Literal["dispatch", "end"]


class Dispatcher:
    """Owns the drainer, one task per session in flight, and the workers it started."""

    def __init__(self, settings: Settings, queue: WorkQueue, sandboxes: WorkerSandboxes) -> None:
        self.settings = settings
        self.queue = queue
        self.sandboxes = sandboxes
        self.workers: dict[str, WorkerRecord] = {}
        self.stats = DispatchStats()
        self.metrics = Metrics()
        self._tasks: dict[str, tuple[TaskKind, asyncio.Task[None]]] = {}
        # Polled (leased, not acked) items waiting for their session's dispatch task.
        self._polled: dict[str, BetaSelfHostedWork] = {}
        # Run-started sessions not listed yet: re-list attempts left (an item may lag its event).
        self._hints: dict[str, int] = {}
        self._claiming = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._starts = asyncio.Semaphore(settings.max_concurrent_starts)

    # ------------------------------------------------------------ session state

    def _schedule(
        self, session_id: str, kind: TaskKind, work: Callable[[], Coroutine[Any, Any, None]]
    ) -> bool:
        """Run `work` as the session's task; a dispatch is not doubled, an end waits its turn."""
        current = self._tasks.get(session_id)
        if current is not None and kind == "dispatch" and current[0] == "dispatch":
            return False
        previous = current[1] if current is not None else None

        async def run() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            await work()

        task = asyncio.create_task(run(), name=f"{kind}:{session_id}")
        self._tasks[session_id] = (kind, task)

        def done(finished: asyncio.Task[None]) -> None:
            if self._tasks.get(session_id, (kind, None))[1] is finished:
                del self._tasks[session_id]
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "session task failed",
                    exc_info=finished.exception(),
                    extra={"session_id": session_id, "task": kind},
                )

        task.add_done_callback(done)
        return True

    def busy(self, session_id: str) -> bool:
        """Whether a task of this session runs (the janitor leaves it alone then)."""
        return session_id in self._tasks

    def snapshot(self) -> dict[str, Any]:
        """A read-only view for `/status` and `/metrics`: sessions in flight, workers, counters."""
        return {
            "in_flight": {s: kind for s, (kind, _) in self._tasks.items()},
            "workers": {
                s: {"sandbox": w.sandbox, "process": w.process, "work_id": w.work_id}
                for s, w in self.workers.items()
            },
            "polled_unclaimed": len(self._polled),
            "stats": dict(vars(self.stats)),
        }

    # ------------------------------------------------------------ entry points

    def notify(self, session_id: str) -> bool:
        """A verified run-started event arrived (its delivery id already deduped by the
        webhook route); False when the session is being dispatched already."""
        current = self._tasks.get(session_id)
        if current is not None and current[0] == "dispatch":
            self.stats.duplicates += 1
            log.info("duplicate delivery ignored", extra={"session_id": session_id})
            return False
        self._hints[session_id] = self.settings.empty_drain_retries
        self.stats.accepted += 1
        self.request_drain()
        return True

    def session_ended(self, session_id: str, reason: str) -> None:
        """The session was terminated, archived or deleted: release its work, delete its sandbox."""
        self._hints.pop(session_id, None)
        self._schedule(session_id, "end", functools.partial(self._end, session_id, reason))

    def request_drain(self) -> None:
        """Ask the drainer for one more drain (many requests before it runs count as one)."""
        self._wake.set()

    async def run(self) -> None:
        """The drainer: one drain per wake-up, at most one per `DRAIN_SPACING_SECONDS` and with
        a rest of `drain_rest` after each, forever (cancelled at shutdown)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            began = loop.time()
            try:
                await self.drain()
            except APIError as exc:
                self.metrics.failures.labels("drain_failed").inc()
                # The API said no (or was unreachable): one line, no traceback, retried later.
                log.error(
                    "drain failed; the next webhook or recovery poll retries it",
                    extra={"reason": str(exc)},
                )
            await asyncio.sleep(drain_rest(loop.time() - began))

    async def poll_forever(self) -> None:
        """Poll mode: long-poll this environment's queue, forever (cancelled at shutdown).

        The blocking poll holds no lock while it waits (other sessions' claims go on); each item
        it gets is then stashed under `_claiming` like a drain's, with the queue polled dry at
        once, so duplicates already queued show before any of them is acked. API errors: one
        line each, then a backoff (0.5 s doubling to 15 s).
        """
        block_ms = self.settings.poll_block_ms
        loop = asyncio.get_running_loop()
        backoff = POLL_BACKOFF_SECONDS
        while True:
            began = loop.time()
            try:
                item = await self.queue.poll(block_ms=block_ms)
                if item is not None:
                    async with self._claiming:
                        await self._stash(item)
                        await self._poll_dry({item.id})
            except APIError as exc:
                self.metrics.failures.labels("poll_failed").inc()
                log.error(
                    "work poll failed; polling again after a pause",
                    extra={"reason": str(exc), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, POLL_BACKOFF_MAX_SECONDS)
                continue
            backoff = POLL_BACKOFF_SECONDS
            if item is None:
                # A server that answers an empty poll at once (ignoring block_ms) would make
                # this a busy loop: at most one empty poll per block_ms.
                await asyncio.sleep(max(0.0, began + block_ms / 1000 - loop.time()))

    async def shutdown(self) -> None:
        """Cancel the session tasks still running."""
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------ the drain

    async def drain(self) -> None:
        """List the claimable work; give each listed session its own dispatch task."""
        self.stats.drains += 1
        self.metrics.drains.inc()
        sessions, others = await self.queue.claimable()
        for session_id in sessions:
            self._hints.pop(session_id, None)
            self._schedule(session_id, "dispatch", functools.partial(self._dispatch, session_id))
        if (sessions or others) and not self._claiming.locked():
            # Poll the queue now, while the sandboxes warm (polled items wait un-acked for
            # their session's task): the first session ready then claims at once, instead of
            # polling every queued item itself while the others wait on `_claiming`.
            task = asyncio.create_task(self._take(None), name="poll-ahead")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._recheck_hints(set(sessions))

    def _recheck_hints(self, listed: set[str]) -> None:
        """A delivery's item may not be listed yet: re-list shortly, a bounded number of times."""
        waiting = False
        for session_id in [s for s in self._hints if s not in listed]:
            if self.busy(session_id):
                continue
            left = self._hints[session_id]
            if left <= 0:
                del self._hints[session_id]
                # Another environment's session (a workspace webhook fires for all of them), or
                # work already claimed: nothing to do for it here.
                log.info(
                    "no claimable work for this session in this environment",
                    extra={"session_id": session_id},
                )
                continue
            self._hints[session_id] = left - 1
            waiting = True
        if waiting:
            asyncio.get_running_loop().call_later(
                self.settings.empty_drain_retry_seconds, self.request_drain
            )

    async def _dispatch(self, session_id: str) -> None:
        """Warm → claim → start, for one session, in one of the `max_concurrent_starts` slots.

        The slot is held for the whole pipeline: with separate waits for warm and start, every
        queued warm-up ran before the first worker start (200 sandboxes warm, none served) and
        the ready sandboxes idled into standby meanwhile.
        """
        async with self._starts:
            sandbox = await self._warm(session_id)
            if sandbox is None:
                return
            item = await self._offered(session_id)
            if item is None:
                log.info("no work left to claim for the session", extra={"session_id": session_id})
                return
            if not await self._ack(item):
                return
            self.stats.claimed += 1
            log.info("work claimed", extra={"session_id": session_id, "work_id": item.id})
            await self._start(item, sandbox)

    async def _warm(self, session_id: str) -> str | None:
        """The session's ready sandbox name, or None (logged) when it cannot be made ready."""
        try:
            return await self.sandboxes.ensure_ready(session_id)
        except BlaxelError as exc:
            self.metrics.failures.labels("sandbox_not_ready").inc()
            log.error(
                "worker sandbox not ready", extra={"session_id": session_id, "reason": str(exc)}
            )
            return None

    async def _offered(self, session_id: str) -> BetaSelfHostedWork | None:
        """The session's item to claim. A listed item may not be offered to a poll yet (the
        queue offers it a moment after it lists it; a fast warm-up polls within that moment):
        polled again after `empty_drain_retry_seconds`, `empty_drain_retries` times at most."""
        item = await self._take(session_id)
        for _ in range(self.settings.empty_drain_retries):
            if item is not None:
                break
            await asyncio.sleep(self.settings.empty_drain_retry_seconds)
            item = await self._take(session_id)
        return item

    async def _take(self, session_id: str | None) -> BetaSelfHostedWork | None:
        """The session's newest polled item (polling the queue dry first, so duplicates show);
        with None, only release what nobody runs."""
        async with self._claiming:
            item = self._polled.get(session_id) if session_id else None
            if item is None:
                await self._poll_dry()
            return self._polled.pop(session_id, None) if session_id else None

    async def _poll_dry(self, polled: set[str] | None = None) -> None:
        """Poll until the queue offers nothing new (nothing outside `polled`); stash each item."""
        polled = set(polled or ())
        while True:
            item = await self.queue.poll()
            if item is None or item.id in polled:
                return
            polled.add(item.id)
            await self._stash(item)

    async def _stash(self, item: BetaSelfHostedWork) -> None:
        """One polled item, from a drain's poll or the poll loop (the caller holds `_claiming`):
        another environment's is left alone, a non-session one released, of a session's
        duplicates the newest kept (the older stopped), and the session's dispatch scheduled."""
        if item.environment_id != self.queue.environment_id:
            # Never expected from our own queue; if it ever happens, nothing of ours
            # (sandbox, ack, stop) touches another environment's work.
            log.error(
                "polled an item of another environment; left alone",
                extra={"work_id": item.id, "environment_id": item.environment_id},
            )
            return
        if item.data.type != "session":
            # Health checks and unknown kinds: nothing to run, release them at once.
            if await self._ack(item):
                await self._stop_quietly(item, "not a session item")
            return
        session_id = item.data.id
        older = self._polled.get(session_id)
        if older is not None and older.id != item.id:
            # Duplicate items for one session: the newest is served, the others stopped.
            keep, drop = sorted((older, item), key=lambda i: i.created_at, reverse=True)
            await self._stop_quietly(drop, "an older duplicate of the session's work")
            item = keep
        self._polled[session_id] = item
        # Work queued after the listing (or polled by the poll loop): its session's own task.
        self._schedule(session_id, "dispatch", functools.partial(self._dispatch, session_id))

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

    def _fallback_key(self, item: BetaSelfHostedWork) -> str | Literal[False] | None:
        """None: the secret serves; a key: the operator's fallback; False: unservable."""
        if sessions_token_of(item.secret) is not None:
            return None
        diagnosis = (
            "the work item's secret is missing or carries no sessions_token (an organization "
            "without the self-hosted sessions-token feature, or an expired or malformed secret)"
        )
        key = self.settings.environment_key
        if self.settings.worker_environment_key_fallback and key is not None:
            log.warning(
                "work secret unusable; the worker gets the environment key "
                "(ORCH_WORKER_ENVIRONMENT_KEY_FALLBACK is on)",
                extra={"session_id": item.data.id, "work_id": item.id, "reason": diagnosis},
            )
            return key.get_secret_value()
        log.error(
            "work item stopped: it cannot be served without a sessions token "
            "(set ORCH_WORKER_ENVIRONMENT_KEY_FALLBACK=true to give workers the environment key)",
            extra={"session_id": item.data.id, "work_id": item.id, "reason": diagnosis},
        )
        return False

    async def _start(self, item: BetaSelfHostedWork, sandbox: str) -> None:
        session_id = item.data.id
        fallback = self._fallback_key(item)
        if fallback is False:
            await self._stop_quietly(item, "no sessions token in its secret")
            return
        env = worker_process_env(
            base_url=self.settings.anthropic_url,
            environment_id=item.environment_id,
            session_id=session_id,
            work_id=item.id,
            work_secret=item.secret,
            max_idle_seconds=self.settings.worker_max_idle_seconds,
            fallback_environment_key=fallback,
        )
        request = worker_process_request(self.settings, env, item.id)
        try:
            started = await self.sandboxes.start_worker(sandbox, request)
        except BlaxelError as exc:
            self.metrics.failures.labels("worker_start_failed").inc()
            # Not stopped (a stop before the first heartbeat can strand the session): the
            # lease lapses, the item is offered again and the recovery poll serves it.
            log.error(
                "worker start failed; the claimed work is left to be reclaimed",
                extra={"session_id": session_id, "work_id": item.id, "reason": str(exc)},
            )
            return
        self.workers[session_id] = WorkerRecord(sandbox, worker_process_name(item.id), item.id)
        if started:
            self.stats.started += 1
            self.metrics.observe_dispatch(item.created_at)
            log.info(
                "worker started",
                extra={"session_id": session_id, "work_id": item.id, "sandbox": sandbox},
            )
        else:
            log.info(
                "worker already running for this work; none started",
                extra={"session_id": session_id, "work_id": item.id, "sandbox": sandbox},
            )

    async def _stop_quietly(self, item: BetaSelfHostedWork | ListedWork, why: str) -> None:
        try:
            await self.queue.stop(item)
            self.stats.stopped += 1
            log.info("work stopped", extra={"work_id": item.id, "reason": why})
        except APIError as exc:
            self.metrics.failures.labels("stop_failed").inc()
            log.error("force-stop failed", extra={"work_id": item.id, "reason": str(exc)})

    # ------------------------------------------------------------ the end of a session

    async def _end(self, session_id: str, reason: str) -> None:
        """Release the session's work and delete its sandbox and volume (ours only)."""
        self._polled.pop(session_id, None)
        self.workers.pop(session_id, None)
        sandbox = worker_sandbox_name(session_id)
        try:
            if not await self.sandboxes.owned(sandbox):
                return
            for item in await self.queue.live_items(session_id):
                await self._stop_quietly(item, "its session ended")
            await self.sandboxes.delete(sandbox)
            if self.settings.worker_volume_size_mb:
                await self.sandboxes.delete_volume(worker_volume_name(session_id))
        except (BlaxelError, APIError) as exc:
            log.warning(
                "session cleanup failed; the janitor retries it",
                extra={"session_id": session_id, "reason": str(exc)},
            )
            return
        self.stats.deleted += 1
        self.metrics.sandboxes_deleted.inc()
        log.info(
            "worker sandbox deleted",
            extra={"session_id": session_id, "sandbox": sandbox, "reason": reason},
        )
