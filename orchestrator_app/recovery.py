"""Recovery: a periodic drain, so work whose webhook never arrived is still served.

A drain lists the environment's claimable work itself, so the recovery poll needs no memory of
which webhooks arrived: it simply asks the dispatcher for a drain every
`recovery_poll_seconds` (0 turns it off). Drains never overlap: the dispatcher runs them one
after another.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator_app.dispatch import Dispatcher

log = logging.getLogger(__name__)


async def recover_forever(dispatcher: Dispatcher, interval_seconds: float) -> None:
    """Request a drain every `interval_seconds`, starting with one at once (catch up on start)."""
    if interval_seconds <= 0:
        log.info("recovery poll disabled")
        return
    while True:
        dispatcher.request_drain()
        await asyncio.sleep(interval_seconds)
