"""The sync watermark in ``sync_state``: the Delta version served, and where it is served from.

``{_id: <collection>, delta_version, documents, mode, synced_at, run_id, active, retired}``
is written only after every write of a sync succeeded and was verified, and only by
compare-and-set:
from the version the run read when it started to the one it synced, never backwards
(``commit``). A run marker ``{_id: <collection>:run}`` is written before the first write
and removed with the commit: when it is still there, an earlier run stopped halfway (so
document counts kept by tally cannot be trusted, and the collection is counted instead).

A run that finds the watermark moved by another run before it writes into the live
collection stops without writing (``check_unchanged``). One that already wrote (its
incremental writes, or its commit) and then fails while another run moved the watermark
(its compare-and-set refused, or any other error) cannot know what it overwrote: it
clears the watermark (``invalidate``), so that the next sync rebuilds the collection
in full instead of trusting either run's version.

The same document is the pointer (blue/green): ``active`` names the collection readers
are served from (``<collection>`` itself for a deployment synced before pointers, which
has no ``active``), ``retired`` the collections it replaced, newest first, with the time
they stopped being served. A full sync's commit moves version and pointer in one write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jobs.sync.writes import SyncError
from schemas.serving import SYNC_STATE_COLLECTION
from schemas.settings import Settings

RUN_MARKER_SUFFIX = ":run"


class SyncConflictError(SyncError):
    """Another run moved the watermark since this run read it (or this run would move it
    backwards): this run's version was not recorded."""


@dataclass(frozen=True, kw_only=True)
class Retired:
    """A collection a full sync replaced, and when it stopped being served."""

    name: str
    at: dt.datetime

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "at": self.at}


@dataclass(frozen=True, kw_only=True)
class SyncState:
    delta_version: int | None
    documents: int | None
    interrupted: bool
    active: str | None = None  # the served collection; None: no pointer (nothing, or legacy)
    retired: tuple[Retired, ...] = ()

    def served(self, collection: str) -> str:
        """The collection readers are served from (the configured name before pointers)."""
        return self.active or collection


def active_collection(db: Database[dict[str, Any]], *, collection: str) -> str:
    """The collection the pointer of ``collection`` names (``collection`` itself without one)."""
    state = db[SYNC_STATE_COLLECTION].find_one({"_id": collection}, {"active": 1}) or {}
    active = state.get("active")
    return active if isinstance(active, str) and active else collection


def served_collection(
    client: MongoClient[dict[str, Any]], settings: Settings
) -> Collection[dict[str, Any]]:
    """The collection readers of ``settings`` are served from now (follows the pointer)."""
    db = client[settings.mongo.database]
    return db[active_collection(db, collection=settings.mongo.collection)]


def _retired(raw: Any) -> tuple[Retired, ...]:
    out = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            at = entry.get("at")
            out.append(
                Retired(name=entry["name"], at=at if isinstance(at, dt.datetime) else utcnow())
            )
    return tuple(out)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def read_state(db: Database[dict[str, Any]], *, collection: str) -> SyncState:
    states = db[SYNC_STATE_COLLECTION]
    state = states.find_one({"_id": collection}) or {}
    marker = states.find_one({"_id": collection + RUN_MARKER_SUFFIX})
    version = state.get("delta_version")
    documents = state.get("documents")
    active = state.get("active")
    return SyncState(
        delta_version=None if version is None else int(version),
        documents=None if documents is None else int(documents),
        interrupted=marker is not None,
        active=active if isinstance(active, str) and active else None,
        retired=_retired(state.get("retired")),
    )


def mark_started(
    db: Database[dict[str, Any]],
    *,
    collection: str,
    mode: str,
    target_version: int,
    run_id: str,
    from_version: int | None,
) -> None:
    db[SYNC_STATE_COLLECTION].replace_one(
        {"_id": collection + RUN_MARKER_SUFFIX},
        {
            "mode": mode,
            "target_version": target_version,
            "from_version": from_version,
            "run_id": run_id,
            "started_at": utcnow(),
        },
        upsert=True,
    )


def _label(version: int | None) -> str:
    return "none (nothing synced)" if version is None else f"version {version}"


def check_unchanged(
    db: Database[dict[str, Any]],
    *,
    collection: str,
    expected_version: int | None,
    delta_version: int,
    rewind: bool = False,
) -> None:
    """Raise ``SyncConflictError`` unless the watermark is still ``expected_version`` and
    ``delta_version`` does not move it backwards (call before writing into the live
    collection: a conflict found here has changed nothing)."""
    state = db[SYNC_STATE_COLLECTION].find_one({"_id": collection}) or {}
    stored = state.get("delta_version")
    if stored != expected_version:
        raise SyncConflictError(
            f"sync_state of {collection}: the watermark moved from {_label(expected_version)} "
            f"(read when this run started) to {_label(stored)} (by run "
            f"{state.get('run_id') or '?'}, {state.get('mode') or '?'}); this run's "
            f"version {delta_version} was not written"
        )
    _refuse_backwards(collection, expected_version, delta_version, rewind=rewind)


def _refuse_backwards(
    collection: str, stored: int | None, delta_version: int, *, rewind: bool
) -> None:
    if stored is not None and delta_version < stored and not rewind:
        raise SyncConflictError(
            f"sync_state of {collection}: version {delta_version} is older than the "
            f"watermark's version {stored}; the watermark never moves backwards"
        )


def commit(
    db: Database[dict[str, Any]],
    *,
    collection: str,
    delta_version: int,
    documents: int,
    mode: str,
    expected_version: int | None,
    run_id: str,
    rewind: bool = False,
    active: str | None = None,
    retired: tuple[Retired, ...] | None = None,
) -> None:
    """Move the watermark from ``expected_version`` (read when the run started) to
    ``delta_version``, by compare-and-set (call only after every write succeeded and was
    verified). ``SyncConflictError`` when another run moved it, or when ``delta_version``
    is older than the stored version (``rewind``: the table was recreated, its versions
    started again). Idempotent for the same ``run_id`` (a retried commit that went through).

    ``active`` and ``retired`` (a full sync) move the pointer in the same write.
    """
    _refuse_backwards(collection, expected_version, delta_version, rewind=rewind)
    states = db[SYNC_STATE_COLLECTION]
    fields: dict[str, Any] = {
        "delta_version": delta_version,
        "documents": documents,
        "mode": mode,
        "synced_at": utcnow(),
        "run_id": run_id,
    }
    if active is not None:
        fields["active"] = active
        fields["retired"] = [r.document() for r in retired or ()]
    # null matches a missing field too: no watermark yet, or one cleared by ``invalidate``.
    moved = states.update_one(
        {"_id": collection, "delta_version": expected_version},
        {"$set": fields, "$unset": {"invalidated": ""}},
    )
    if not moved.matched_count and not _insert_first(states, collection, fields, expected_version):
        state = states.find_one({"_id": collection}) or {}
        ours = state.get("run_id") == run_id and state.get("delta_version") == delta_version
        if not ours:  # (ours: a retried commit whose first attempt went through)
            raise SyncConflictError(
                f"sync_state of {collection}: expected the watermark at "
                f"{_label(expected_version)} (read when this run started), found "
                f"{_label(state.get('delta_version'))} (by run {state.get('run_id') or '?'}, "
                f"{state.get('mode') or '?'}); version {delta_version} was not recorded"
            )
    states.delete_one({"_id": collection + RUN_MARKER_SUFFIX, "run_id": run_id})


def _insert_first(
    states: Collection[dict[str, Any]],
    collection: str,
    fields: dict[str, Any],
    expected_version: int | None,
) -> bool:
    """The first watermark of ``collection`` (False: there is one already)."""
    if expected_version is not None:
        return False
    try:
        states.insert_one({"_id": collection, **fields})
    except DuplicateKeyError:
        return False
    return True


def invalidate(
    db: Database[dict[str, Any]],
    *,
    collection: str,
    reason: str,
    unless_version: int | None,
    unless_run: str,
) -> bool:
    """Clear the watermark, unless it is still ``unless_version`` or was written by
    ``unless_run`` (this run): the collection's version is unknown, the next sync
    rebuilds it. True when it was cleared."""
    cleared = db[SYNC_STATE_COLLECTION].update_one(
        {
            "_id": collection,
            "delta_version": {"$ne": unless_version},
            "run_id": {"$ne": unless_run},
        },
        {
            "$set": {
                "delta_version": None,
                "documents": None,
                "mode": "invalidated",
                "synced_at": utcnow(),
                "invalidated": reason[:2000],
                "run_id": unless_run,
            }
        },
    )
    return bool(cleared.matched_count)


def forget_retired(db: Database[dict[str, Any]], *, collection: str, names: list[str]) -> None:
    """Remove dropped collections from the pointer's ``retired`` list."""
    if names:
        db[SYNC_STATE_COLLECTION].update_one(
            {"_id": collection}, {"$pull": {"retired": {"name": {"$in": names}}}}
        )
