"""``Reader``: the one object the lookups read through, composed of the read path's parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.settings import ApiSettings

from api.metrics import Metrics
from api.prediction_store import PredictionStore
from api.reads.budget import StoreBudget, StoreUnavailableError
from api.reads.cache import Doc, ReadCache
from api.reads.coalescing import ReadCoalescer
from api.reads.known_ids import KnownIds, KnownIdsFilter
from api.reads.served import ServedData
from api.reads.watermark import WatermarkPoller


class Reader:
    """Cache first, then the known-ids filter, then the store within its budget (single
    lookups coalesced); a watermark move clears what was read before it."""

    def __init__(
        self,
        store: PredictionStore,
        cfg: ApiSettings,
        *,
        metrics: Metrics | None = None,
        models: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self._budget = StoreBudget(
            timeout_s=cfg.store_timeout_ms / 1000,
            retry_after_s=cfg.store_retry_after_s,
            trip_after=cfg.store_trip_after,
        )
        self._cache = ReadCache(max_entries=cfg.cache_max_entries)
        self._known = KnownIdsFilter(store, self.metrics, enabled=cfg.known_ids_filter)
        self._coalescer = ReadCoalescer(
            store, self._budget, self._cache, enabled=cfg.coalesce_reads
        )
        self._poller = WatermarkPoller(
            store, self._budget, poll_s=cfg.watermark_poll_s, on_change=self.invalidate
        )
        # When the served data was synced, its score dates (of ``models``), its staleness.
        self.served = ServedData(
            store, models=models, stale_after_s=cfg.sync_stale_after_hours * 3600
        )
        self.last_priors: dict[str, Doc] = {}
        # Rendered answers, bound straight to the cache: a rendered hit pays no extra call.
        self.rendered_answer = self._cache.rendered_answer
        self.remember_rendered = self._cache.remember_rendered

    @property
    def generation(self) -> int:
        """Moves at every invalidation (take it before a read to render from)."""
        return self._cache.generation

    @property
    def max_entries(self) -> int:
        return self._cache.max_entries

    @property
    def cache_entries(self) -> int:
        return len(self._cache.docs)

    @property
    def timeout_s(self) -> float:
        return self._budget.timeout_s

    @property
    def store_up(self) -> bool:
        return self._budget.store_up

    @property
    def known(self) -> KnownIds | None:
        return self._known.known

    @property
    def watermark(self) -> Any:
        return self._poller.watermark

    async def get(self, customer_id: str) -> Doc | None:
        docs = self._cache.docs
        if customer_id in docs:
            return docs[customer_id]
        if self._known.surely_absent(customer_id):
            return None
        return await self._coalescer.get(customer_id)

    async def get_many(self, customer_ids: list[str]) -> dict[str, Doc | None]:
        docs, known = self._cache.docs, self._known
        out: dict[str, Doc | None] = {}
        missing: list[str] = []
        for cid in customer_ids:
            if cid in docs:
                out[cid] = docs[cid]
            elif known.surely_absent(cid):
                out[cid] = None
            else:
                missing.append(cid)
        if missing:
            generation = self._cache.generation
            found = await self._budget.call(self.store.get_many(missing))
            fetched = {cid: found.get(cid) for cid in missing}
            self._cache.remember(generation, fetched)
            out.update(fetched)
        return out

    async def priors(self) -> dict[str, Doc]:
        """Priors from the store, else the last ones read (a degraded answer still has them)."""
        try:
            self.last_priors = await self._budget.call(self.store.priors())
        except StoreUnavailableError:
            if not self.last_priors:
                raise
        return self.last_priors

    def invalidate(self) -> None:
        """A sync landed (or the store came back): forget everything read before."""
        self._cache.invalidate()
        self._known.reset()  # nothing is skipped until the filter of the new sync is built
        self.store.invalidate()
        self.served.update(self._poller.watermark)
        if self._poller.synced:
            self._known.rebuild()

    async def poll_once(self) -> None:
        """Read the watermark (also the store's health probe); clear the cache when it moved."""
        await self._poller.poll_once()

    async def start(self) -> None:
        await self._poller.start()

    async def stop(self) -> None:
        self._known.stop()
        self.served.stop()
        await self._poller.stop()
