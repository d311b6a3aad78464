"""Where the API reads precomputed predictions: a small interface and its MongoDB backend."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

import pymongo
from pymongo import AsyncMongoClient
from schemas.serving import CUSTOMER_ID_PATTERN, PRIORS_COLLECTION_SUFFIX, SYNC_STATE_COLLECTION
from schemas.settings import MongoSettings

_ID = re.compile(CUSTOMER_ID_PATTERN)


def _plain_id(customer_id: object) -> str:
    """Defence in depth (routes validate first): only plain id strings ever reach a query."""
    if type(customer_id) is not str or _ID.fullmatch(customer_id) is None:
        raise ValueError("customer ids must be plain strings matching the id pattern")
    return customer_id


class PredictionStore(Protocol):
    async def get(self, customer_id: str) -> dict[str, Any] | None: ...

    async def get_many(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]: ...

    async def watermark(self) -> Any: ...

    async def ids(self) -> list[str]: ...

    def invalidate(self) -> None: ...

    async def priors(self) -> dict[str, dict[str, Any]]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MongoPredictionStore:
    """Reads one document per customer by ``_id`` (plain string equality, nothing else)."""

    def __init__(self, cfg: MongoSettings, *, priors_ttl_s: float = 30.0) -> None:
        # Lookups are bounded by the caller (``api.reads``: ``asyncio.timeout`` at
        # ``api.store_timeout_ms``; a cancelled operation closes its connection). The
        # driver's own per-operation deadline (``timeoutMS``) is not set: its bookkeeping
        # runs on every operation, and in an A/B at one connection on this machine a bare
        # ASGI app over the driver answered fewer lookups per second with it than without.
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            cfg.effective_uri,
            serverSelectionTimeoutMS=cfg.server_selection_timeout_ms,
            socketTimeoutMS=cfg.socket_timeout_ms,
            connectTimeoutMS=cfg.server_selection_timeout_ms,
        )
        db = self._client[cfg.database]
        self._db = db
        # The collection the sync's pointer names (``watermark`` follows it); the
        # configured name until the first poll, and for deployments synced before pointers.
        self._predictions = db[cfg.collection]
        self._priors = db[cfg.collection + PRIORS_COLLECTION_SUFFIX]
        self._sync_state = db[SYNC_STATE_COLLECTION]
        self._collection_name = cfg.collection
        self._priors_ttl_s = priors_ttl_s
        self._scan_timeout_s = 600.0
        self._priors_cache: tuple[float, dict[str, dict[str, Any]]] | None = None

    async def get(self, customer_id: str) -> dict[str, Any] | None:
        return await self._predictions.find_one({"_id": _plain_id(customer_id)})

    async def get_many(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        """One round trip: ``$in`` on ``_id`` with plain strings only.

        ``limit`` as well as ``batch_size``: when every id is found the first batch is
        full, and without a limit the server keeps the cursor open, so the driver sends a
        ``getMore``, a second round trip, which can fail (CursorNotFound) when the collection
        is dropped in between (a replaced one, after its grace)."""
        ids = list(dict.fromkeys(_plain_id(c) for c in customer_ids))
        n = max(len(ids), 1)
        cursor = self._predictions.find({"_id": {"$in": ids}}, limit=n, batch_size=n)
        return {doc["_id"]: doc async for doc in cursor}

    async def ids(self) -> list[str]:
        """Every customer id in the collection (for the known-ids filter: a scan, so the
        per-lookup budget does not apply; it runs in the background)."""
        with pymongo.timeout(self._scan_timeout_s):
            cursor = self._predictions.find({}, {"_id": 1}, batch_size=10_000)
            return [doc["_id"] async for doc in cursor]

    async def watermark(self) -> Any:
        """The sync's watermark for this collection (changes after every sync), or None.

        It also follows the pointer: reads that start after it returned go to the
        collection it names. A read already running finishes on the collection it
        started on, which the sync keeps for ``mongo.drop_grace_s`` (longer than the
        poll), so no answer mixes two collections."""
        state = await self._sync_state.find_one({"_id": self._collection_name})
        if state is None:
            return None
        active = state.get("active")
        name = active if isinstance(active, str) and active else self._collection_name
        if name != self._predictions.name:
            self._predictions = self._db[name]
        return (state.get("delta_version"), state.get("synced_at"), state.get("mode"), name)

    @property
    def serving(self) -> str:
        """The collection reads go to now."""
        return self._predictions.name

    async def newest_score_dates(self, models: Sequence[str]) -> dict[str, str]:
        """The newest ``score_date`` of each model in the collection (models without one are
        left out): one ``$group`` pass over the collection, so it runs in the background
        after a sync, like ``ids``. Model names are configured ones (plain names; one with a
        dot or ``$`` could not be a field path and is skipped)."""
        names = [m for m in dict.fromkeys(models) if "." not in m and not m.startswith("$")]
        if not names:
            return {}
        group: dict[str, Any] = {"_id": None}
        for i, name in enumerate(names):
            group[f"m{i}"] = {"$max": f"$models.{name}.score_date"}
        with pymongo.timeout(self._scan_timeout_s):
            cursor = await self._predictions.aggregate([{"$group": group}])
            rows = [row async for row in cursor]
        if not rows:
            return {}
        row = rows[0]
        return {
            name: row[f"m{i}"] for i, name in enumerate(names) if isinstance(row.get(f"m{i}"), str)
        }

    async def priors(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if self._priors_cache is not None and now - self._priors_cache[0] < self._priors_ttl_s:
            return self._priors_cache[1]
        priors = {doc["_id"]: doc async for doc in self._priors.find({})}
        self._priors_cache = (now, priors)
        return priors

    def invalidate(self) -> None:
        """Forget cached priors (a sync landed)."""
        self._priors_cache = None

    async def ping(self) -> bool:
        await self._client.admin.command("ping")
        return True

    async def close(self) -> None:
        await self._client.close()
