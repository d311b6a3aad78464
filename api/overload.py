"""Load shedding on event-loop lag: when the loop is late, new lookups get a fast 503.

One uvicorn process is one event loop. When it is short of CPU, requests wait in the
kernel's socket buffers and in the loop's ready queue before any of our code sees them,
so an in-flight limit never fills up while the answers take seconds. What does grow is
the loop's lag: how late a timer fires. A tiny probe task sleeps ``probe_s`` over and
over and measures how late it woke, smoothed per wake-up (``weight`` of the newest one, so
a lone stall such as a collector pass counts for a part of its length and a lasting lag
for all of it). Above the budget (``api.shed_after_ms``) the guard answers new ``/v1``
requests with 503 and ``Retry-After`` before any work: that cuts the loop's work per
request to almost nothing, the lag falls back under the budget within a few wake-ups,
and requests are admitted again (nothing to undo: the only state is the smoothed lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import CollectorRegistry, Counter, Gauge


class LoopLag:
    """How late the event loop runs a timer, in seconds (0 until ``start``)."""

    def __init__(self, *, probe_s: float = 0.005, weight: float = 0.3) -> None:
        self.probe_s = probe_s
        self.weight = weight
        self.smoothed = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.smoothed = 0.0
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def observe(self, sample: float) -> None:
        """Fold in one wake-up's lateness (seconds)."""
        self.smoothed += self.weight * (sample - self.smoothed)
        self.samples += 1

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.probe_s
            await asyncio.sleep(self.probe_s)
            self.observe(max(0.0, time.monotonic() - due))


class Shedder:
    """The shedding decision (lag over budget) and its metrics, in the app's own registry."""

    def __init__(
        self, *, budget_s: float, registry: CollectorRegistry, lag: LoopLag | None = None
    ) -> None:
        self.budget_s = budget_s
        self.lag = lag or LoopLag()
        self.shed = Counter(
            "lakescore_api_shed",
            "Requests answered 503 before any work, by route and reason (loop_lag, concurrency).",
            ["route", "reason"],
            registry=registry,
        )
        Gauge(
            "lakescore_api_loop_lag_seconds",
            "Event-loop lag (smoothed), the signal for load shedding.",
            registry=registry,
        ).set_function(lambda: self.lag.smoothed)
        self._children: dict[tuple[str, str], Counter] = {}

    @property
    def enabled(self) -> bool:
        return self.budget_s > 0

    def overloaded(self) -> bool:
        return self.budget_s > 0 and self.lag.smoothed > self.budget_s

    def count(self, route: str, reason: str) -> None:
        child = self._children.get((route, reason))
        if child is None:
            child = self._children[(route, reason)] = self.shed.labels(route, reason)
        child.inc()

    def start(self) -> None:
        if self.enabled:
            self.lag.start()

    async def stop(self) -> None:
        await self.lag.stop()
