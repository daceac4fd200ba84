"""The Anthropic backend: every operation (mixins) over one state, plus its lifecycle.

backend = AnthropicBackend(config)
await backend.start()      # on the server's loop: webhook delivery runs there
backend.create_environment({...}); backend.deliveries; backend.workers_for(session_id)
backend.reset()            # forget everything (tests)
await backend.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from emulator.anthropic.agents import AgentOps
from emulator.anthropic.environments import EnvironmentOps
from emulator.anthropic.memory_stores import MemoryStoreOps
from emulator.anthropic.records import Delivery
from emulator.anthropic.sessions import SessionOps
from emulator.config import EmulatorConfig


class AnthropicBackend(EnvironmentOps, AgentOps, SessionOps, MemoryStoreOps):
    """State and operations of the emulated Anthropic platform (API, Console, webhooks)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._delivery_tasks = set()
        self.streams_closed = False
        super().__init__(config)

    def _init_records(self) -> None:
        super()._init_records()
        self._unsent: list[Delivery] = []

    async def start(self) -> None:
        """Bind to the running loop: long polls, streams and webhook deliveries live on it."""
        self._loop = asyncio.get_running_loop()
        self.streams_closed = False
        self._http = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(10.0))
        unsent, self._unsent = self._unsent, []
        for delivery in unsent:
            self._spawn_delivery(delivery)

    def close_streams(self) -> None:
        """End every open event stream (call before stopping the server: uvicorn waits for
        open responses, and an SSE stream only ends when its session does)."""
        self.streams_closed = True
        self.notify()

    async def stop(self) -> None:
        tasks = list(self._delivery_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._wake_waiters()
        self._loop = None

    def reset(self) -> None:
        """Forget every record, key, endpoint and delivery; the clock returns to wall time."""
        with self._lock:
            for task in list(self._delivery_tasks):
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(task.cancel)
            self._init_records()
            self.clock.reset()
            self.streams_closed = False
        self.notify()

    def live_resources(self) -> dict[str, list[str]]:
        """Ids of everything that still exists (leak checks)."""
        with self._lock:
            return {
                "environments": list(self.environments),
                "agents": [a.id for a in self.agents.values() if a.archived_at is None],
                "sessions": [s.id for s in self.sessions.values() if not s.deleted],
                "work": [w.id for w in self.work_items.values() if w.state != "stopped"],
                "webhook_endpoints": list(self.webhook_endpoints),
            }

    def deliveries_for(self, session_id: str) -> list[Delivery]:
        """Webhook deliveries about `session_id` (test inspection)."""
        with self._lock:
            return [d for d in self.deliveries if d.session_id == session_id]

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary for debugging a failing test."""
        with self._lock:
            return {
                "live": self.live_resources(),
                "deliveries": [
                    {
                        "endpoint": d.endpoint_id,
                        "id": d.webhook_id,
                        "attempts": d.attempts,
                        "forced": d.forced,
                    }
                    for d in self.deliveries
                ],
                "claims": [(c.work_id, c.session_id, c.worker_id) for c in self.claims],
            }
