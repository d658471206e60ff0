"""How work in progress ends when the service is told to stop: it gets the drain timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

__all__ = ["finish_or_drain"]

log = logging.getLogger("dreambolt.watch")


async def finish_or_drain(
    work: asyncio.Future[Any], stopping: asyncio.Event, drain_timeout: float
) -> bool:
    """Wait for `work`; once `stopping` is set it has `drain_timeout` seconds more to finish,
    then it is cancelled (an ingest commits or rolls back the transaction in progress whole).
    True if it finished; its result or error stays on `work`."""
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            await asyncio.wait([work], timeout=drain_timeout)
    finally:
        stopped.cancel()
    if work.done():
        return True
    log.warning("drain timeout (%gs) passed: stopping the load in progress", drain_timeout)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return False
