"""Reads from the store within a budget, behind a read cache that the sync's watermark invalidates.

- Every store call is bounded (``api.store_timeout_ms``); a failure marks the store down
  for ``api.store_retry_after_s`` so that later requests answer degraded at once instead
  of each waiting for the timeout. The background poll brings it back when it answers.
- Predictions change only when a sync lands, and every sync rewrites its watermark
  (``sync_state`` ``delta_version``). The poll reads the watermark every
  ``api.watermark_poll_s`` and clears the cache when it changes. A generation counter
  keeps a read that started before a change from re-filling the cache with old data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any, NamedTuple

from pymongo.errors import PyMongoError
from schemas.settings import ApiSettings

from api.known_ids import KnownIds
from api.metrics import Metrics
from api.store import PredictionStore

log = logging.getLogger("lakescore.api.reader")
_UNSET = object()
Doc = dict[str, Any]


class Rendered(NamedTuple):
    """One answer ready to send: its JSON bytes, and what metrics and the log need."""

    body: bytes
    sources: tuple[str, ...]
    served: tuple[dict[str, Any], ...]


class StoreUnavailableError(RuntimeError):
    """The store did not answer within the budget (or is known to be down)."""


class Reader:
    def __init__(
        self, store: PredictionStore, cfg: ApiSettings, *, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.use_known_ids = cfg.known_ids_filter
        self.coalesce = cfg.coalesce_reads
        self._pending: dict[str, asyncio.Future[Doc | None]] = {}
        self._fetches: set[asyncio.Task[None]] = set()
        self._reads = 0  # single-lookup reads out at the store now
        self.known: KnownIds | None = None
        self._known_task: asyncio.Task[None] | None = None
        self.timeout_s = cfg.store_timeout_ms / 1000
        self.retry_after_s = cfg.store_retry_after_s
        self.poll_s = cfg.watermark_poll_s
        self.max_entries = cfg.cache_max_entries
        self.cache: dict[str, Doc | None] = {}
        # Rendered answers (JSON bytes) of single lookups of one model, for the day they
        # were rendered on (``stale`` depends on the date); cleared with the cache.
        self.rendered: dict[tuple[str, str], Rendered] = {}
        self.rendered_day: dt.date | None = None
        self.generation = 0
        self.watermark: Any = _UNSET
        self.down_until = 0.0
        self.last_priors: dict[str, Doc] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def store_up(self) -> bool:
        return time.monotonic() >= self.down_until

    async def _call(self, coro: Any) -> Any:
        if not self.store_up:
            coro.close()
            raise StoreUnavailableError("store marked down")
        try:
            async with asyncio.timeout(self.timeout_s):  # the budget (the driver has none)
                return await coro
        except (PyMongoError, TimeoutError) as exc:
            self.down_until = time.monotonic() + self.retry_after_s
            log.warning("serving store unavailable: %s", type(exc).__name__)
            raise StoreUnavailableError(type(exc).__name__) from exc

    def _surely_absent(self, customer_id: str) -> bool:
        known = self.known
        if known is None or known.might_contain(customer_id):
            return False
        self.metrics.store_skipped.inc()
        return True

    async def get(self, customer_id: str) -> Doc | None:
        if customer_id in self.cache:
            return self.cache[customer_id]
        if self._surely_absent(customer_id):
            return None
        if not self.coalesce or (self._reads == 0 and not self._pending):
            # Nothing in flight to share a round trip with: read at once (no extra loop
            # turns); lookups arriving while this read is out are coalesced as usual.
            generation = self.generation
            self._reads += 1
            try:
                doc = await self._call(self.store.get(customer_id))
            finally:
                self._reads -= 1
            self._remember(generation, {customer_id: doc})
            return doc
        future = self._pending.get(customer_id)
        if future is None:
            future = self._pending[customer_id] = asyncio.get_running_loop().create_future()
            if len(self._pending) == 1:
                asyncio.get_running_loop().call_soon(self._flush)
        result: Doc | None = await asyncio.shield(future)  # one caller leaving cancels no other
        return result

    def _flush(self) -> None:
        """Single lookups that arrived in one loop turn share one round trip (``$in``)."""
        batch, self._pending = self._pending, {}
        if batch:
            task = asyncio.create_task(self._fetch(batch))
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)

    async def _fetch(self, batch: dict[str, asyncio.Future[Doc | None]]) -> None:
        generation = self.generation
        ids = list(batch)
        self._reads += 1
        try:
            if len(ids) == 1:
                doc = await self._call(self.store.get(ids[0]))
                found = {} if doc is None else {ids[0]: doc}
            else:
                found = await self._call(self.store.get_many(ids))
        except StoreUnavailableError as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(StoreUnavailableError(str(exc)))
                    future.exception()  # retrieved here: a caller may have gone away
            return
        finally:
            self._reads -= 1
        docs = {cid: found.get(cid) for cid in ids}
        self._remember(generation, docs)
        for cid, future in batch.items():
            if not future.done():
                future.set_result(docs[cid])

    async def get_many(self, customer_ids: list[str]) -> dict[str, Doc | None]:
        out: dict[str, Doc | None] = {}
        missing: list[str] = []
        for cid in customer_ids:
            if cid in self.cache:
                out[cid] = self.cache[cid]
            elif self._surely_absent(cid):
                out[cid] = None
            else:
                missing.append(cid)
        if missing:
            generation = self.generation
            found = await self._call(self.store.get_many(missing))
            fetched = {cid: found.get(cid) for cid in missing}
            self._remember(generation, fetched)
            out.update(fetched)
        return out

    async def priors(self) -> dict[str, Doc]:
        """Priors from the store, else the last ones read (a degraded answer still has them)."""
        try:
            self.last_priors = await self._call(self.store.priors())
        except StoreUnavailableError:
            if not self.last_priors:
                raise
        return self.last_priors

    def _remember(self, generation: int, docs: dict[str, Doc | None]) -> None:
        if self.max_entries <= 0 or generation != self.generation:
            return
        if len(self.cache) + len(docs) > self.max_entries:
            self.cache.clear()  # crude but bounded; a sync clears it anyway
        self.cache.update(docs)

    def rendered_answer(self, key: tuple[str, str], day: dt.date) -> Rendered | None:
        if day != self.rendered_day:
            self.rendered.clear()
            self.rendered_day = day
            return None
        return self.rendered.get(key)

    def remember_rendered(
        self, generation: int, key: tuple[str, str], day: dt.date, value: Rendered
    ) -> None:
        """Keep an answer rendered from data read in ``generation`` (else it may be older
        than the last sync) on ``day``."""
        if self.max_entries <= 0 or generation != self.generation or day != self.rendered_day:
            return
        if len(self.rendered) >= self.max_entries:
            self.rendered.clear()  # crude but bounded, as the document cache
        self.rendered[key] = value

    def invalidate(self) -> None:
        self.generation += 1
        self.cache.clear()
        self.rendered.clear()
        self.known = None  # nothing is skipped until the filter of the new sync is built
        self.store.invalidate()
        # No watermark means no completed sync: the collection may be mid-write, so a
        # filter built now could skip customers that are about to land.
        if self.use_known_ids and self.watermark not in (None, _UNSET):
            if self._known_task is not None:
                self._known_task.cancel()
            self._known_task = asyncio.create_task(self._build_known(self.generation))

    async def _build_known(self, generation: int) -> None:
        try:
            ids = await self.store.ids()
            known = await asyncio.to_thread(KnownIds, ids, count=len(ids))
        except (PyMongoError, TimeoutError) as exc:
            log.warning("known-ids filter not built: %s", type(exc).__name__)
            return
        if generation == self.generation:
            self.known = known
            log.info("known-ids filter built: %d ids", len(ids))

    async def poll_once(self) -> None:
        """Read the watermark (also the store's health probe); clear the cache when it moved."""
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                mark = await self.store.watermark()
        except (PyMongoError, TimeoutError) as exc:
            self.down_until = time.monotonic() + self.retry_after_s
            log.debug("watermark poll failed: %s", type(exc).__name__)
            return
        recovered = self.down_until > 0.0
        self.down_until = 0.0
        # After an outage the store may come back restored or rebuilt under the same
        # watermark: drop everything read before it, as after a sync.
        if mark != self.watermark or recovered:
            if self.watermark is not _UNSET:
                log.info("sync watermark %s (recovered=%s): read cache cleared", mark, recovered)
            self.watermark = mark
            self.invalidate()

    async def _loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_s)

    async def start(self) -> None:
        await self.poll_once()
        self._task = asyncio.create_task(self._loop(), name="watermark-poll")

    async def stop(self) -> None:
        if self._known_task is not None:
            self._known_task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
