"""The sync watermark in ``sync_state``: the Delta version the serving collection holds.

``{_id: <collection>, delta_version, documents, mode, synced_at}`` is written only
after every write of a sync succeeded and was verified. A run marker
``{_id: <collection>:run}`` is written before the first write and removed with the
commit: when it is still there, an earlier run stopped halfway (so document
counts kept by tally cannot be trusted, and the collection is counted instead).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from schemas.serving import SYNC_STATE_COLLECTION

RUN_MARKER_SUFFIX = ":run"


@dataclass(frozen=True, kw_only=True)
class SyncState:
    delta_version: int | None
    documents: int | None
    interrupted: bool


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def read_state(db: Database[dict[str, Any]], *, collection: str) -> SyncState:
    states = db[SYNC_STATE_COLLECTION]
    state = states.find_one({"_id": collection}) or {}
    marker = states.find_one({"_id": collection + RUN_MARKER_SUFFIX})
    version = state.get("delta_version")
    documents = state.get("documents")
    return SyncState(
        delta_version=None if version is None else int(version),
        documents=None if documents is None else int(documents),
        interrupted=marker is not None,
    )


def mark_started(
    db: Database[dict[str, Any]], *, collection: str, mode: str, target_version: int
) -> None:
    db[SYNC_STATE_COLLECTION].replace_one(
        {"_id": collection + RUN_MARKER_SUFFIX},
        {"mode": mode, "target_version": target_version, "started_at": utcnow()},
        upsert=True,
    )


def commit(
    db: Database[dict[str, Any]],
    *,
    collection: str,
    delta_version: int,
    documents: int,
    mode: str,
) -> None:
    """Advance the watermark (call only after every write succeeded and was verified)."""
    states = db[SYNC_STATE_COLLECTION]
    states.replace_one(
        {"_id": collection},
        {
            "delta_version": delta_version,
            "documents": documents,
            "mode": mode,
            "synced_at": utcnow(),
        },
        upsert=True,
    )
    states.delete_one({"_id": collection + RUN_MARKER_SUFFIX})
