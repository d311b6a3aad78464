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
    """Each call gets ``timeout_s`` (the driver has no deadline of its own). An error from
    the store marks it down for ``retry_after_s`` at once, so later calls fail fast instead
    of each waiting for the timeout; a call over budget only counts, and ``trip_after``
    of them in a row mark it down (one slow read in a burst says the store is busy, not
    gone: tripping on it would answer every customer degraded for ``retry_after_s``). A
    call that answers resets the count; the watermark poll (``mark_up``) brings it back."""

    def __init__(self, *, timeout_s: float, retry_after_s: float, trip_after: int = 3) -> None:
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.trip_after = max(1, trip_after)
        self.down_until = 0.0
        self.slow_in_a_row = 0

    @property
    def store_up(self) -> bool:
        return time.monotonic() >= self.down_until

    async def call(self, coro: Any) -> Any:
        if not self.store_up:
            coro.close()
            raise StoreUnavailableError("store marked down")
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await coro
        except TimeoutError as exc:
            self.over_budget()
            raise StoreUnavailableError(type(exc).__name__) from exc
        except PyMongoError as exc:
            self.mark_down()
            log.warning("serving store unavailable: %s", type(exc).__name__)
            raise StoreUnavailableError(type(exc).__name__) from exc
        self.answered()
        return answer

    def over_budget(self) -> None:
        """A call ran out of its budget: the store is marked down at the ``trip_after``-th in a row."""
        self.slow_in_a_row += 1
        if self.slow_in_a_row >= self.trip_after:
            log.warning("serving store over budget %d times in a row", self.slow_in_a_row)
            self.mark_down()

    def answered(self) -> None:
        self.slow_in_a_row = 0

    def mark_down(self) -> None:
        self.down_until = time.monotonic() + self.retry_after_s
        self.slow_in_a_row = 0

    def mark_up(self) -> bool:
        """The store answered: up again. True when it had failed since the last ``mark_up``."""
        recovered = self.down_until > 0.0
        self.down_until = 0.0
        return recovered
