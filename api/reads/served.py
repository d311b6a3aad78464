"""What the served data is: when its sync completed, and its newest score date per model.

Both come from the sync watermark the reader already polls (``sync_state``:
``{_id: <collection>, delta_version, documents, mode, synced_at}``), so a stuck or failing
nightly shows on ``/metrics`` without reading Delta:

- data age (``lakescore_served_data_age_seconds``): now minus ``synced_at`` of the last
  completed sync this process saw. A cleared watermark (``delta_version`` null: a sync lost
  its compare-and-set after writing) is not a completed sync, so the age keeps counting from
  the one before; unknown (NaN) until a completed sync was seen.
- stale answers (``lakescore_api_stale_answers_total``): answers read from synced data
  (batch scores and priors) while its age is over ``api.sync_stale_after_hours``.
- score date (``lakescore_served_score_date{model}``): the watermark does not carry it, so
  it is derived from the collection once per watermark move, in the background: the
  newest ``models.<model>.score_date`` of each configured model (one ``$group`` over the
  collection, like the known-ids filter's scan of the ids). A store without
  ``newest_score_dates`` (the tests' in-memory stores) reports none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pymongo.errors import PyMongoError

log = logging.getLogger("lakescore.api.reader")


@runtime_checkable
class ScoreDateSource(Protocol):
    async def newest_score_dates(self, models: Sequence[str]) -> dict[str, str]: ...


def completed_sync_time(mark: Any) -> float | None:
    """``synced_at`` (unix seconds) of a watermark ``(delta_version, synced_at, mode)`` that
    records a completed sync; None for anything else (no watermark, a cleared one)."""
    if not isinstance(mark, tuple) or len(mark) < 2 or mark[0] is None:
        return None
    synced_at = mark[1]
    if not isinstance(synced_at, dt.datetime):
        return None
    if synced_at.tzinfo is None:  # the driver's datetimes are naive UTC
        synced_at = synced_at.replace(tzinfo=dt.UTC)
    return synced_at.timestamp()


def day_timestamp(score_date: str) -> float | None:
    """``YYYY-MM-DD`` as the unix time of its midnight UTC (None when not a date)."""
    try:
        day = dt.date.fromisoformat(score_date)
    except (TypeError, ValueError):
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


class ServedData:
    """The served data's sync time and score dates, updated when the watermark moves."""

    def __init__(self, store: Any, *, models: Sequence[str], stale_after_s: float) -> None:
        self.store = store
        self.models = list(dict.fromkeys(models))
        self.stale_after_s = stale_after_s
        self.synced_at: float | None = None
        # Unix time after which answers count as stale (inf: no completed sync seen yet).
        self._stale_from = float("inf")
        self.score_dates: dict[str, float] = {}
        self._epoch = 0
        self._task: asyncio.Task[None] | None = None

    def update(self, mark: Any) -> None:
        """The watermark moved (or the store came back): take its sync time, then re-read
        the score dates in the background."""
        synced_at = completed_sync_time(mark)
        if synced_at is not None:
            self.synced_at = synced_at
            self._stale_from = synced_at + self.stale_after_s
        self._epoch += 1
        if mark is None or not self.models or not isinstance(self.store, ScoreDateSource):
            return
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._read_score_dates(self._epoch, self.store))

    def age_s(self, now: float | None = None) -> float | None:
        """Seconds since the served data's sync completed (None: no completed sync seen)."""
        if self.synced_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.synced_at)

    def stale(self) -> bool:
        """The served data is older than ``api.sync_stale_after_hours`` (one clock read)."""
        return time.time() > self._stale_from

    async def _read_score_dates(self, epoch: int, store: ScoreDateSource) -> None:
        try:
            dates = await store.newest_score_dates(self.models)
        except (PyMongoError, TimeoutError) as exc:
            log.warning("served score dates not read: %s", type(exc).__name__)
            return
        if epoch != self._epoch:  # a later watermark move started its own read
            return
        stamps = {model: day_timestamp(day) for model, day in dates.items()}
        self.score_dates = {model: ts for model, ts in stamps.items() if ts is not None}

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
