"""The budget of every store call, and the breaker that a failure trips."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pymongo.errors import PyMongoError

log = logging.getLogger("lakescore.api.reader")


class StoreUnavailableError(RuntimeError):
    """The store did not answer within the budget (or is known to be down)."""


class StoreBudget:
    """Each call gets ``timeout_s`` (the driver has no deadline of its own); a failure marks
    the store down for ``retry_after_s``, so later calls fail at once instead of each waiting
    for the timeout. The watermark poll (``mark_up``) brings it back when it answers."""

    def __init__(self, *, timeout_s: float, retry_after_s: float) -> None:
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.down_until = 0.0

    @property
    def store_up(self) -> bool:
        return time.monotonic() >= self.down_until

    async def call(self, coro: Any) -> Any:
        if not self.store_up:
            coro.close()
            raise StoreUnavailableError("store marked down")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await coro
        except (PyMongoError, TimeoutError) as exc:
            self.mark_down()
            log.warning("serving store unavailable: %s", type(exc).__name__)
            raise StoreUnavailableError(type(exc).__name__) from exc

    def mark_down(self) -> None:
        self.down_until = time.monotonic() + self.retry_after_s

    def mark_up(self) -> bool:
        """The store answered: up again. True when it had failed since the last ``mark_up``."""
        recovered = self.down_until > 0.0
        self.down_until = 0.0
        return recovered
