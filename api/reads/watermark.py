"""The watermark poll: the signal that a sync landed, and the store's health probe.

Predictions change only when a sync lands, and every sync rewrites its watermark
(``sync_state`` ``delta_version``). The poll reads it every ``api.watermark_poll_s`` and
calls ``on_change`` when it moved, or when the store answers again after a failure (it
may come back restored or rebuilt under the same watermark).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError

from api.prediction_store import PredictionStore
from api.reads.budget import StoreBudget

log = logging.getLogger("lakescore.api.reader")
UNSET: Any = object()  # no poll has answered yet


class WatermarkPoller:
    def __init__(
        self,
        store: PredictionStore,
        budget: StoreBudget,
        *,
        poll_s: float,
        on_change: Callable[[], None],
    ) -> None:
        self.store = store
        self.budget = budget
        self.poll_s = poll_s
        self.on_change = on_change
        self.watermark: Any = UNSET
        self._task: asyncio.Task[None] | None = None

    @property
    def synced(self) -> bool:
        """A completed sync is announced (no watermark: the collection may be mid-write)."""
        return self.watermark not in (None, UNSET)

    async def poll_once(self) -> None:
        try:
            async with asyncio.timeout(self.budget.timeout_s * 2):
                mark = await self.store.watermark()
        except TimeoutError:
            self.budget.over_budget()  # slow, like a read: only enough in a row mark it down
            log.debug("watermark poll over budget")
            return
        except PyMongoError as exc:
            self.budget.mark_down()
            log.debug("watermark poll failed: %s", type(exc).__name__)
            return
        self.budget.answered()
        recovered = self.budget.mark_up()
        if mark != self.watermark or recovered:
            if self.watermark is not UNSET:
                log.info("sync watermark %s (recovered=%s): read cache cleared", mark, recovered)
            self.watermark = mark
            self.on_change()

    async def _loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_s)

    async def start(self) -> None:
        await self.poll_once()
        self._task = asyncio.create_task(self._loop(), name="watermark-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
