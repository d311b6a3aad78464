"""Where the API reads precomputed predictions: a small interface and its MongoDB backend."""

from __future__ import annotations

import time
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from schemas.serving import PRIORS_COLLECTION_SUFFIX
from schemas.settings import MongoSettings


class PredictionStore(Protocol):
    async def get(self, customer_id: str) -> dict[str, Any] | None: ...

    async def priors(self) -> dict[str, dict[str, Any]]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MongoPredictionStore:
    """Reads one document per customer by ``_id`` (plain string equality, nothing else)."""

    def __init__(self, cfg: MongoSettings, *, priors_ttl_s: float = 30.0) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            cfg.effective_uri,
            serverSelectionTimeoutMS=cfg.server_selection_timeout_ms,
            socketTimeoutMS=cfg.socket_timeout_ms,
            connectTimeoutMS=cfg.server_selection_timeout_ms,
        )
        db = self._client[cfg.database]
        self._predictions = db[cfg.collection]
        self._priors = db[cfg.collection + PRIORS_COLLECTION_SUFFIX]
        self._priors_ttl_s = priors_ttl_s
        self._priors_cache: tuple[float, dict[str, dict[str, Any]]] | None = None

    async def get(self, customer_id: str) -> dict[str, Any] | None:
        if not isinstance(customer_id, str):  # defence in depth: ids are validated by the route
            raise TypeError("customer_id must be a string")
        return await self._predictions.find_one({"_id": customer_id})

    async def priors(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if self._priors_cache is not None and now - self._priors_cache[0] < self._priors_ttl_s:
            return self._priors_cache[1]
        priors = {doc["_id"]: doc async for doc in self._priors.find({})}
        self._priors_cache = (now, priors)
        return priors

    async def ping(self) -> bool:
        await self._client.admin.command("ping")
        return True

    async def close(self) -> None:
        await self._client.close()
