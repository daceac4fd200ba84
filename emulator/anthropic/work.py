"""The self-hosted work queue: poll, ack, heartbeat (leases), stop, list, stats."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from emulator.anthropic import agent_script
from emulator.anthropic.common import iso, new_id, paginate
from emulator.anthropic.environments import apply_metadata_patch, check_metadata
from emulator.anthropic.exceptions import (
    ConflictError,
    InvalidRequestError,
    PreconditionFailedError,
)
from emulator.anthropic.records import Session, WorkItem
from emulator.anthropic.state import BackendState, Claim

NO_HEARTBEAT = "NO_HEARTBEAT"
DEFAULT_LEASE_TTL = 300  # seconds; the SDK's SEND_RETRY_WINDOW calls this the server default
DEFAULT_RECLAIM_MS = 5000
WORKERS_POLLING_WINDOW = timedelta(seconds=30)
LIVE_STATES = ("queued", "starting", "active", "stopping")


# What a polled item's `secret` holds, per environment (the SDK types it optional, "may be
# populated", and its sessions token optional: orgs without the self-hosted memory-store
# feature get none; docs/platform-contract.md, "work secret").
SECRET_MODES = ("full", "no_sessions_token", "absent")


def encode_secret(sessions_token: str | None) -> str:
    """The poll response's `secret`: URL-safe base64 JSON without padding (the SDK restores it)."""
    payload: dict[str, str] = {"ingress_token": secrets.token_urlsafe(24)}
    if sessions_token is not None:
        payload["sessions_token"] = sessions_token
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def check_block_ms(block_ms: int | None) -> None:
    if block_ms is not None and not 1 <= block_ms <= 999:
        raise InvalidRequestError(f"block_ms: must be between 1 and 999, got {block_ms}")


class WorkOps(BackendState):
    """enqueue_work, poll_work, ack_work, heartbeat_work, stop_work, list_work, work_stats,
    retrieve_work, update_work."""

    def enqueue_work(self, session: Session) -> WorkItem:
        """Queue an item; it becomes pollable `work_pollable_delay_s` later (its run-started
        webhook may reach a receiver before that: one empty poll is not final)."""
        now = self.clock.now()
        delay = self.config.timing.work_pollable_delay_s
        item = WorkItem(
            id=new_id("work"),
            environment_id=session.environment_id,
            session_id=session.id,
            created_at=now,
            pollable_at=now + timedelta(seconds=delay),
        )
        with self._lock:
            self.work_items[item.id] = item
        self.notify()
        self.notify_later(delay)
        return item

    def set_work_secret_mode(self, environment_id: str, mode: str) -> None:
        """What this environment's polled secrets carry (a test control)."""
        if mode not in SECRET_MODES:
            raise InvalidRequestError(f"mode: must be one of {', '.join(SECRET_MODES)}")
        with self._lock:
            self.get_environment(environment_id)
            self.work_secret_modes[environment_id] = mode

    def _new_secret(self, item: WorkItem, now: datetime) -> str | None:
        """A fresh secret for a polled item, shaped by its environment's mode."""
        mode = self.work_secret_modes.get(item.environment_id, "full")
        if mode == "absent":
            item.sessions_token = None
            return None
        if mode == "no_sessions_token":
            item.sessions_token = None
            return self._issue(encode_secret(None))
        item.sessions_token = self._issue("sk-ant-sst01-" + secrets.token_urlsafe(32))
        self.sessions_tokens[item.sessions_token] = item.id
        self.sessions_token_expiry[item.sessions_token] = now + timedelta(
            seconds=self.config.work_secret_ttl_s
        )
        return self._issue(encode_secret(item.sessions_token))

    def live_work_for(self, session_id: str) -> list[WorkItem]:
        return [
            i
            for i in self.work_items.values()
            if i.session_id == session_id and i.state in LIVE_STATES
        ]

    def _requeue_lapsed(self, now: datetime) -> None:
        """Acked items whose lease ran out go back to the queue.

        Their tokens stay valid for that item, so the worker that lost the lease hears
        412 on its next heartbeat (not 401) and lets the item go without stopping it.
        """
        for item in self.work_items.values():
            if (
                item.state in ("starting", "active")
                and item.lease_expires_at
                and item.lease_expires_at < now
            ):
                item.state = "queued"
                item.polled_at = item.polled_by = item.acknowledged_at = item.started_at = None
                item.last_heartbeat = item.lease_expires_at = None
                item.lease_ttl = 0

    def try_poll_work(
        self, environment_id: str, *, worker_id: str | None, reclaim_older_than_ms: int | None
    ) -> dict[str, Any] | None:
        """Hand out the oldest claimable item (with a fresh secret), or None."""
        reclaim = timedelta(
            milliseconds=DEFAULT_RECLAIM_MS
            if reclaim_older_than_ms is None
            else reclaim_older_than_ms
        )
        with self._lock:
            self.get_environment(environment_id)
            now = self.clock.now()
            if worker_id:
                self.worker_polls[(environment_id, worker_id)] = now
            self._requeue_lapsed(now)
            for item in self.work_items.values():
                if item.environment_id != environment_id or item.state != "queued":
                    continue
                if item.polled_at is not None and now - item.polled_at < reclaim:
                    continue
                if item.pollable_at is not None and now < item.pollable_at:
                    continue
                if self._blocked(item):
                    continue
                secret = self._new_secret(item, now)
                item.polled_at, item.polled_by = now, worker_id
                self.claims.append(Claim(item.id, item.session_id, worker_id, now))
                return item.to_api(secret=secret)
        return None

    async def poll_work(
        self,
        environment_id: str,
        *,
        worker_id: str | None,
        block_ms: int | None,
        reclaim_older_than_ms: int | None,
    ) -> dict[str, Any] | None:
        """Long poll: wait up to `block_ms` for an item (none given: answer at once)."""
        check_block_ms(block_ms)
        deadline = time.monotonic() + (block_ms or 0) / 1000
        while True:
            with self.watching() as changed:
                found = self.try_poll_work(
                    environment_id, worker_id=worker_id, reclaim_older_than_ms=reclaim_older_than_ms
                )
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)

    def ack_work(self, environment_id: str, work_id: str) -> dict[str, Any]:
        with self._lock:
            item = self.get_work(environment_id, work_id)
            if item.state in ("starting", "active"):
                # A late ack from a poller whose claim was reclaimed: harmless, and a 4xx
                # would make the SDK poller force-stop work another worker now serves.
                # Who really holds the lease is settled by the first heartbeat.
                return item.to_api()
            if not item.pending:
                raise ConflictError(
                    f"Work item {work_id} is {item.state} and cannot be acknowledged"
                )
            now = self.clock.now()
            item.state = "starting"
            item.acknowledged_at = now
            item.lease_ttl = DEFAULT_LEASE_TTL
            item.lease_expires_at = now + timedelta(seconds=DEFAULT_LEASE_TTL)
            return item.to_api()

    def heartbeat_work(
        self,
        environment_id: str,
        work_id: str,
        *,
        expected_last_heartbeat: str | None,
        desired_ttl_seconds: int | None,
    ) -> dict[str, Any]:
        """Extend the lease if `expected_last_heartbeat` matches; 412 otherwise (lease lost)."""
        if desired_ttl_seconds is not None and not 1 <= desired_ttl_seconds <= 3600:
            raise InvalidRequestError("desired_ttl_seconds: must be between 1 and 3600")
        with self._lock:
            item = self.get_work(environment_id, work_id)
            now = self.clock.now()
            self._requeue_lapsed(now)
            if item.state in ("stopping", "stopped"):
                return self._heartbeat_body(item, extended=False)
            stored = item.last_heartbeat or NO_HEARTBEAT
            # Without `expected_last_heartbeat` the update is unconditional (no optimistic check).
            mismatch = expected_last_heartbeat is not None and expected_last_heartbeat != stored
            if item.state == "queued" or mismatch:
                raise PreconditionFailedError(
                    f"expected_last_heartbeat does not match the lease of work item {work_id}; "
                    "another worker may hold it",
                    details={
                        "error_code": "heartbeat_precondition_failed",
                        "current_state": item.lease_state(),
                    },
                )
            ttl = desired_ttl_seconds or item.lease_ttl or DEFAULT_LEASE_TTL
            item.state = "active"
            item.started_at = item.started_at or now
            item.last_heartbeat = iso(now)
            item.lease_ttl = ttl
            item.lease_expires_at = now + timedelta(seconds=ttl)
            return self._heartbeat_body(item, extended=True)

    @staticmethod
    def _heartbeat_body(item: WorkItem, *, extended: bool) -> dict[str, Any]:
        return {
            "type": "work_heartbeat",
            "last_heartbeat": item.last_heartbeat or "",
            "lease_extended": extended,
            "state": item.state,
            "ttl_seconds": item.lease_ttl,
        }

    def stop_work(self, environment_id: str, work_id: str, *, force: bool) -> dict[str, Any]:
        """Stop now (`force`, or nothing running) or ask the worker to (stopping); 409 if stopped."""
        with self._lock:
            item = self.get_work(environment_id, work_id)
            if item.state == "stopped":
                raise ConflictError(f"Work item {work_id} is already stopped")
            now = self.clock.now()
            self._strand_if_unstarted(item)
            item.stop_requested_at = item.stop_requested_at or now
            if force or item.state == "queued":
                item.state = "stopped"
                item.stopped_at = now
            else:
                item.state = "stopping"
            result = item.to_api()
        self.notify()
        return result

    def _strand_if_unstarted(self, item: WorkItem) -> None:
        """An item claimed (polled or acked) and stopped before its worker's first heartbeat
        leaves its session stuck at `requires_action`, never offered again
        (anthropic-sdk-python#1779, #1786): no later message queues work for it."""
        claimed = item.polled_at is not None or item.state == "starting"
        session = self.sessions.get(item.session_id)
        unstarted = claimed and item.last_heartbeat is None
        if unstarted and session is not None and agent_script.open_tool_calls(session.events):
            session.stranded = True

    def _blocked(self, item: WorkItem) -> bool:
        """A session whose earlier item sticks in `stopping` gets no new work (DESIGN §3)."""
        return any(
            other.session_id == item.session_id and other.state == "stopping"
            for other in self.work_items.values()
            if other is not item
        )

    def list_work(
        self, environment_id: str, *, limit: int | None, page: str | None
    ) -> dict[str, Any]:
        with self._lock:
            self.get_environment(environment_id)
            self._requeue_lapsed(self.clock.now())
            # Oldest first: the order the queue hands items out in.
            rows = [i for i in self.work_items.values() if i.environment_id == environment_id]
            chunk, next_page = paginate(rows, limit=limit, page=page)
            return {"data": [i.to_api() for i in chunk], "next_page": next_page}

    def work_stats(self, environment_id: str) -> dict[str, Any]:
        with self._lock:
            self.get_environment(environment_id)
            now = self.clock.now()
            self._requeue_lapsed(now)
            waiting = [
                i
                for i in self.work_items.values()
                if i.environment_id == environment_id and i.state == "queued"
            ]
            oldest = min((i.created_at for i in waiting), default=None)
            workers = {
                worker
                for (env, worker), at in self.worker_polls.items()
                if env == environment_id and now - at <= WORKERS_POLLING_WINDOW
            }
            return {
                "type": "work_queue_stats",
                "depth": sum(1 for i in waiting if not i.pending),
                "pending": sum(1 for i in waiting if i.pending),
                "oldest_queued_at": iso(oldest) if oldest else None,
                "workers_polling": len(workers),
            }

    def retrieve_work(self, environment_id: str, work_id: str) -> dict[str, Any]:
        with self._lock:
            return self.get_work(environment_id, work_id).to_api()

    def update_work(self, environment_id: str, work_id: str, metadata: Any) -> dict[str, Any]:
        with self._lock:
            item = self.get_work(environment_id, work_id)
            if metadata is not None:
                patch = check_metadata(metadata, patch=True)
                item.metadata = apply_metadata_patch(item.metadata, patch, empty_deletes=False)
            return item.to_api()

    def workers_for(self, session_id: str) -> list[str | None]:
        """Every worker id that claimed work of `session_id`, in order (test inspection)."""
        with self._lock:
            return [claim.worker_id for claim in self.claims if claim.session_id == session_id]
