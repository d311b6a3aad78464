"""A Bloom filter of the customer ids the last landed sync wrote.

"Definitely not in the serving store" answers new customers (the cold-start path, and
priors for unknown ids) without a database round trip. A "maybe" goes to the database
as before, so a false positive costs one read, never a wrong answer. The filter is
rebuilt after every sync (watermark change); until the rebuild finishes nothing is
skipped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np

HASHES = 7
_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def _hash_pair(customer_id: str) -> tuple[int, int]:
    digest = hashlib.blake2b(customer_id.encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


class KnownIds:
    """``might_contain(id)`` is False only for ids that were not in the collection."""

    def __init__(self, ids: Iterable[str], *, count: int, bits_per_id: int = 10) -> None:
        self.count = count
        self.bits = max(1024, count * bits_per_id)
        pairs = np.array([_hash_pair(c) for c in ids], dtype=np.uint64).reshape(-1, 2)
        self.array = np.zeros(math.ceil(self.bits / 8), dtype=np.uint8)
        if len(pairs):
            steps = np.arange(HASHES, dtype=np.uint64)
            with np.errstate(over="ignore"):
                positions = (pairs[:, :1] + steps * pairs[:, 1:]) % np.uint64(self.bits)
            positions = positions.ravel()
            np.bitwise_or.at(self.array, positions // 8, (1 << (positions % 8)).astype(np.uint8))
        # Looked up as ``bytes``: indexing gives a plain int (a numpy scalar per probe costs
        # more than the rest of the check).
        self.table = self.array.tobytes()

    def might_contain(self, customer_id: str) -> bool:
        digest = _blake2b(customer_id.encode("utf-8"), digest_size=16).digest()
        h1 = _from_bytes(digest[:8], "little")
        h2 = _from_bytes(digest[8:], "little") | 1
        bits, table = self.bits, self.table
        for i in range(HASHES):
            pos = ((h1 + i * h2) & 0xFFFFFFFFFFFFFFFF) % bits
            if not table[pos >> 3] & (1 << (pos & 7)):
                return False
        return True
