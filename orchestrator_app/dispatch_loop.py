"""The dispatch machinery's own event loop, in a thread of its own.

Why: a webhook must be answered in milliseconds however busy dispatch is. On one event loop,
every step of hundreds of session tasks (Anthropic and Blaxel calls, JSON parsing, logging)
runs between two webhook requests; on a loop of its own, the web loop is left with HTTP
serving and the signature check.

Ownership, said once: **the Dispatcher, its session tasks, the drainer, janitor, recovery and
poll loops, and the SDK clients they use (the Anthropic client's connection pool, the Blaxel
SDK's per-loop client) are touched only from this loop's thread.** Other threads reach them in
two ways only: `call(fn, *args)`, fire and forget (`loop.call_soon_threadsafe`: the webhook
route), and `run(coro)`, a coroutine run on this loop whose result the caller awaits (the
lifespan's start and stop; `/ready`, `/status` and `/metrics`, which probe the APIs and read the
dispatcher's state from here).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class DispatchLoop:
    """An event loop running forever in a daemon thread, until `stop()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="dispatch", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def start(self) -> None:
        self._thread.start()

    def call(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the dispatch loop soon; returns at once, never waits."""
        self.loop.call_soon_threadsafe(callback, *args)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the dispatch loop; the caller's loop stays free while it runs (a
        cancelled caller cancels it)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        """Stop the loop and wait for its thread (end its tasks first, through `run`)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        elif not self.loop.is_closed():
            self.loop.close()  # never started
