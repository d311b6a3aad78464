"""The known-ids filter: a Bloom filter of the customer ids the last landed sync wrote.

"Definitely not in the serving store" answers new customers (the cold-start path, and
priors for unknown ids) without a database round trip. A "maybe" goes to the database
as before, so a false positive costs one read, never a wrong answer. The filter is
rebuilt after every sync (watermark change); until the rebuild finishes nothing is
skipped.

Sizing: 20 bits and 10 probes per id, a false-positive rate of about 0.01% (2.5 MB per
million ids). At 10 bits and 7 probes (about 0.8%) every 125th new customer still cost a
database round trip, and those reads, not the scoring, were the cold-start p99.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np
from pymongo.errors import PyMongoError

from api.metrics import Metrics
from api.prediction_store import PredictionStore

BITS_PER_ID = 20
HASHES = 10
BUILD_CHUNK = 200_000  # ids hashed per numpy pass (bounds the build's memory: ~16 MB)
_MASK = 0xFFFFFFFFFFFFFFFF
_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes
log = logging.getLogger("lakescore.api.reader")


def _hash_pair(customer_id: str) -> tuple[int, int]:
    digest = _blake2b(customer_id.encode("utf-8"), digest_size=16).digest()
    return _from_bytes(digest[:8], "little"), _from_bytes(digest[8:], "little") | 1


def _chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


class KnownIds:
    """``might_contain(id)`` is False only for ids that were not in the collection."""

    def __init__(
        self,
        ids: Iterable[str],
        *,
        count: int,
        bits_per_id: int = BITS_PER_ID,
        hashes: int = HASHES,
    ) -> None:
        self.count = count
        self.hashes = hashes
        self.bits = max(1024, count * bits_per_id)
        self.array = np.zeros(math.ceil(self.bits / 8), dtype=np.uint8)
        steps = np.arange(hashes, dtype=np.uint64)
        modulus = np.uint64(self.bits)
        for chunk in _chunks(ids, BUILD_CHUNK):
            pairs = np.array([_hash_pair(c) for c in chunk], dtype=np.uint64).reshape(-1, 2)
            with np.errstate(over="ignore"):
                positions = ((pairs[:, :1] + steps * pairs[:, 1:]) % modulus).ravel()
            np.bitwise_or.at(self.array, positions // 8, (1 << (positions % 8)).astype(np.uint8))
        # Looked up as ``bytes``: indexing gives a plain int (a numpy scalar per probe costs
        # more than the rest of the check).
        self.table = self.array.tobytes()

    def might_contain(self, customer_id: str) -> bool:
        digest = _blake2b(customer_id.encode("utf-8"), digest_size=16).digest()
        h1 = _from_bytes(digest[:8], "little")
        h2 = _from_bytes(digest[8:], "little") | 1
        bits, table = self.bits, self.table
        for i in range(self.hashes):
            pos = ((h1 + i * h2) & _MASK) % bits
            if not table[pos >> 3] & (1 << (pos & 7)):
                return False
        return True


class KnownIdsFilter:
    """The filter of the last landed sync, rebuilt in the background after each one.

    ``reset`` (a sync landed) drops the filter at once: nothing is skipped until the build
    that ``rebuild`` starts has finished, and a build started before a later ``reset`` is
    thrown away."""

    def __init__(self, store: PredictionStore, metrics: Metrics, *, enabled: bool) -> None:
        self.store = store
        self.metrics = metrics
        self.enabled = enabled
        self.known: KnownIds | None = None
        self._epoch = 0
        self._task: asyncio.Task[None] | None = None

    def surely_absent(self, customer_id: str) -> bool:
        known = self.known
        if known is None or known.might_contain(customer_id):
            return False
        self.metrics.store_skipped.inc()
        return True

    def reset(self) -> None:
        self._epoch += 1
        self.known = None

    def rebuild(self) -> None:
        if not self.enabled:
            return
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._build(self._epoch))

    async def _build(self, epoch: int) -> None:
        try:
            ids = await self.store.ids()
            known = await asyncio.to_thread(KnownIds, ids, count=len(ids))
        except (PyMongoError, TimeoutError) as exc:
            log.warning("known-ids filter not built: %s", type(exc).__name__)
            return
        if epoch == self._epoch:
            self.known = known
            log.info("known-ids filter built: %d ids", len(ids))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
