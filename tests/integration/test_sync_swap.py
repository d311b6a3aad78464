"""The full resync's swap waits for its rename under its own deadline, not the socket timeout
(a real Mongo-wire server over TCP)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo import MongoClient

from jobs.sync.paths import _swap
from jobs.sync.writes import BatchWriteError
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def _collections(uri: str, *, socket_timeout_ms: int) -> tuple[Any, MongoClient[Any]]:
    """A fresh database with a live and a build collection, through a client whose reads
    time out after ``socket_timeout_ms``."""
    name = f"swap_{uuid.uuid4().hex[:8]}"
    with MongoClient(uri) as setup:
        setup[name]["live"].insert_many([{"_id": i, "v": "old"} for i in range(50)])
        setup[name]["build"].insert_many([{"_id": i, "v": "new"} for i in range(2_000)])
    client: MongoClient[Any] = MongoClient(uri, socketTimeoutMS=socket_timeout_ms)
    return client[name], client


def _fast_retries(settings: Settings, **mongo: Any) -> Settings:
    update = {"retry_attempts": 2, "retry_initial_backoff_s": 0.0, **mongo}
    return settings.model_copy(update={"mongo": settings.mongo.model_copy(update=update)})


def test_the_rename_is_not_bound_by_the_socket_timeout(mongo_uri: str, settings: Settings) -> None:
    db, client = _collections(mongo_uri, socket_timeout_ms=1)
    with client:  # one attempt: a retry would find the rename done and count it as done
        _swap(db, source="build", target="live", settings=_fast_retries(settings, retry_attempts=1))
    with MongoClient(mongo_uri) as check:
        live = check[db.name]["live"]
        assert live.count_documents({}) == 2_000 and live.count_documents({"v": "old"}) == 0
        assert "build" not in check[db.name].list_collection_names()


def test_a_swap_past_its_deadline_fails_and_the_live_collection_stays_whole(
    mongo_uri: str, settings: Settings
) -> None:
    """A rename past its deadline raises; the server may still finish it (a timeout never
    says the command did not run), but readers see the old collection or the new one."""
    db, client = _collections(mongo_uri, socket_timeout_ms=5_000)
    tight = _fast_retries(settings, swap_timeout_ms=1)
    with client, pytest.raises(BatchWriteError, match=r"swapping .*build in as .*live failed"):
        _swap(db, source="build", target="live", settings=tight)
    with MongoClient(mongo_uri) as check:
        live = check[db.name]["live"]
        versions = {doc["v"] for doc in live.find({}, {"v": 1})}
        assert (versions, live.count_documents({})) in [({"old"}, 50), ({"new"}, 2_000)]
