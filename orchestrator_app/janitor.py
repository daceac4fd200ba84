"""The janitor: reconcile worker sandboxes x worker processes x sessions, periodically.

Webhooks say when a session ends, but deliveries get lost and the orchestrator restarts; this
pass catches up. For each worker sandbox of *this* environment (by its labels) whose session
has no task in flight:

| session                              | worker process | action                               |
|--------------------------------------|----------------|--------------------------------------|
| terminated, archived or gone         | any            | release its work, delete sandbox (+ volume) |
| running / rescheduling               | none running   | re-dispatch (a drain claims its work) |
| idle                                 | any            | leave it: the next turn reuses it     |

A sandbox idle past `worker_idle_ttl` is deleted by Blaxel itself (`ttl-idle`); the janitor then
deletes the volume left behind.
"""

from __future__ import annotations

import asyncio
import logging

from anthropic import APIError

from orchestrator_app.dispatch import Dispatcher
from orchestrator_app.errors import BlaxelError

log = logging.getLogger(__name__)


async def janitor_pass(dispatcher: Dispatcher) -> None:
    """One reconciliation of every worker sandbox and volume of this environment."""
    sandboxes = await dispatcher.sandboxes.list_workers()
    redispatch = False
    for sandbox in sandboxes:
        session_id = sandbox.session_id
        if dispatcher.busy(session_id):
            continue
        status = await dispatcher.queue.session_status(session_id)
        if status == "ended":
            log.info(
                "janitor: the session ended; deleting its sandbox",
                extra={"session_id": session_id, "sandbox": sandbox.name},
            )
            dispatcher.session_ended(session_id, "janitor: session ended")
        elif (
            status in ("running", "rescheduling")
            and await dispatcher.sandboxes.running_worker(sandbox.name) is None
        ):
            log.info(
                "janitor: session running without a worker; re-dispatching",
                extra={"session_id": session_id, "sandbox": sandbox.name},
            )
            dispatcher.workers.pop(session_id, None)
            redispatch = True
    if redispatch:
        dispatcher.request_drain()
    live = {s.session_id for s in sandboxes}
    for volume, session_id in await dispatcher.sandboxes.list_worker_volumes():
        if session_id not in live and not dispatcher.busy(session_id):
            log.info(
                "janitor: deleting a volume whose sandbox is gone",
                extra={"session_id": session_id, "volume": volume},
            )
            await dispatcher.sandboxes.delete_volume(volume)


async def janitor_forever(dispatcher: Dispatcher, interval_seconds: float) -> None:
    """A pass at start (catch up after a restart), then every `interval_seconds`."""
    while True:
        try:
            await janitor_pass(dispatcher)
        except (BlaxelError, APIError) as exc:
            log.warning("janitor pass failed; retried next interval", extra={"reason": str(exc)})
        await asyncio.sleep(interval_seconds)
