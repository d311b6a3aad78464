"""Request coalescing: single lookups that arrive while a read is out share one round trip."""

from __future__ import annotations

import asyncio

from api.prediction_store import PredictionStore
from api.reads.budget import StoreBudget, StoreUnavailableError
from api.reads.cache import Doc, ReadCache


class ReadCoalescer:
    """With nothing in flight a lookup reads at once (no extra loop turns); lookups arriving
    while a read is out wait for the end of the loop turn and share one ``$in``."""

    def __init__(
        self, store: PredictionStore, budget: StoreBudget, cache: ReadCache, *, enabled: bool
    ) -> None:
        self.store = store
        self.budget = budget
        self.cache = cache
        self.enabled = enabled
        self._pending: dict[str, asyncio.Future[Doc | None]] = {}
        self._fetches: set[asyncio.Task[None]] = set()
        self._reads = 0  # single-lookup reads out at the store now

    async def get(self, customer_id: str) -> Doc | None:
        if not self.enabled or (self._reads == 0 and not self._pending):
            generation = self.cache.generation
            self._reads += 1
            try:
                doc = await self.budget.call(self.store.get(customer_id))
            finally:
                self._reads -= 1
            self.cache.remember(generation, {customer_id: doc})
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
        generation = self.cache.generation
        ids = list(batch)
        self._reads += 1
        try:
            if len(ids) == 1:
                doc = await self.budget.call(self.store.get(ids[0]))
                found = {} if doc is None else {ids[0]: doc}
            else:
                found = await self.budget.call(self.store.get_many(ids))
        except StoreUnavailableError as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(StoreUnavailableError(str(exc)))
                    future.exception()  # retrieved here: a caller may have gone away
            return
        finally:
            self._reads -= 1
        docs = {cid: found.get(cid) for cid in ids}
        self.cache.remember(generation, docs)
        for cid, future in batch.items():
            if not future.done():
                future.set_result(docs[cid])
