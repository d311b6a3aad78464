"""The two sync paths: blue/green by pointer, and incremental upserts/deletes from the change feed.

Full: the documents go into a new collection of their own (``<collection>__v<version>_<run>``),
are verified there, and the commit moves the watermark and the pointer to it in one
write (``jobs/sync/state.py``): readers switch at that write, never see a half-built
collection, and no collection is renamed (``renameCollection`` copies every document on
some servers and is refused for sharded collections). The collection it replaced is
kept (``mongo.keep_collections``) and older ones are dropped after ``mongo.drop_grace_s``
(``drop_replaced``), as are builds of runs that died before their commit. Incremental:
replace-upserts and deletes into the collection the pointer names.

Both mark the run as started in ``sync_state`` before the first write, verify after
the last one, and leave advancing the watermark (``commit``) as the very last step.
Both take the snapshot of the target version (Arrow, read in a thread while the
change feed is read) and draw the documents, the expected count, the verification
sample and the priors from it.

One writer at a time: right before the first write into the live collection (the
incremental upserts, the full path's commit) a run checks that it still holds the
``sync`` lease and that the watermark is still the version it read when it started;
otherwise it stops with ``SyncConflictError`` and has changed nothing the API reads.
The watermark then moves by compare-and-set from that version; a run that loses it
after writing clears the watermark, so the next sync rebuilds in full.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pymongo.database import Database
from pymongo.errors import PyMongoError

from jobs.platform import Lease, LeaseLostError, retrying, with_retries
from jobs.sync.changes import distinct_customers, priors, rows_of
from jobs.sync.documents import batched, expected_models, iter_documents
from jobs.sync.state import (
    Retired,
    SyncConflictError,
    SyncState,
    check_unchanged,
    commit,
    forget_retired,
    invalidate,
    mark_started,
    read_state,
    utcnow,
)
from jobs.sync.verify import Verification, compare_sample, count
from jobs.sync.writes import BatchWriteError, WriteTally, insert_batches, upsert_and_delete
from schemas.serving import PRIORS_COLLECTION_SUFFIX
from schemas.settings import Settings

log = logging.getLogger(__name__)
BUILD_INFIX = "__v"  # <collection>__v<delta version>_<run id>: a full sync's collection


def build_name(collection: str, *, version: int, run_id: str) -> str:
    return f"{collection}{BUILD_INFIX}{version}_{run_id}"


def is_build_of(collection: str, name: str) -> bool:
    """``name`` is a collection some full sync of ``collection`` wrote."""
    prefix = collection + BUILD_INFIX
    version, sep, run = name[len(prefix) :].partition("_")
    return name.startswith(prefix) and version.isdigit() and bool(sep) and run.isalnum()


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What this run read when it started, and what it holds: checked before it writes."""

    run_id: str
    expected_version: int | None  # the watermark read when the run started
    lease: Lease | None  # the ``sync`` lease (None: the caller holds none)
    rewind: bool = False  # the table was recreated: its versions started again
    served: str | None = None  # the collection the pointer named when the run started
    retired: tuple[Retired, ...] = ()  # what the pointer listed as replaced then


@dataclass(frozen=True, kw_only=True)
class Outcome:
    tally: WriteTally
    verification: Verification
    phases: dict[str, float]  # seconds per phase, in order


class _Clock:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self._last, 3)
        self._last = now


def _still_ours(db: Database[dict[str, Any]], name: str, claim: Claim, version: int) -> None:
    """Right before the first write into the live collection: the lease is still held and
    the watermark still where this run read it (else nothing was written)."""
    if claim.lease is not None:
        try:
            claim.lease.check()
        except LeaseLostError as exc:
            raise SyncConflictError(f"{exc}; version {version} was not written") from exc
    check_unchanged(
        db,
        collection=name,
        expected_version=claim.expected_version,
        delta_version=version,
        rewind=claim.rewind,
    )


def run_full(
    settings: Settings,
    db: Database[dict[str, Any]],
    *,
    claim: Claim,
    version: int,
    rows: Future[pa.Table],
) -> Outcome:
    name = settings.mongo.collection
    clock = _Clock()
    with_retries(
        settings,
        mark_started,
        db,
        collection=name,
        mode="full",
        target_version=version,
        run_id=claim.run_id,
        from_version=claim.expected_version,
    )
    table = rows.result()
    clock.lap("read_delta")
    tally = WriteTally()
    build = db[build_name(name, version=version, run_id=claim.run_id)]
    docs = iter_documents(table, delta_version=version, synced_at=utcnow())
    batches = batched(docs, size=settings.mongo.batch_size)
    insert_batches(build, batches, settings=settings, tally=tally)
    if not tally.inserted:
        with_retries(settings, _create_empty, db, build.name)  # nobody left: serve an empty one
    clock.lap("write")
    expected = distinct_customers(table)
    ids = _sample_ids(table, k=settings.mongo.verify_sample_size, seed=version)
    verification = Verification(
        collection=f"{db.name}.{build.name}",
        expected_documents=expected,
        documents=with_retries(settings, count, build, expected=expected),
        count_method="counted",
        sampled=len(ids),
        mismatches=with_retries(settings, compare_sample, build, expected_models(table, ids)),
    )
    verification.raise_for_failure()  # the pointer still names the served collection
    clock.lap("verify")
    with_retries(settings, _still_ours, db, name, claim, version)
    served = claim.served or name
    replaced = served != build.name and served in with_retries(settings, db.list_collection_names)
    retired = ((Retired(name=served, at=utcnow()),) if replaced else ()) + claim.retired
    with _writing_live(db, settings, name=name, claim=claim, mode="full", version=version):
        outcome = _finish(
            db,
            settings,
            claim=claim,
            table=table,
            name=name,
            version=version,
            mode="full",
            expected=expected,
            tally=tally,
            verification=verification,
            clock=clock,
            pointer=(build.name, retired),
        )
    if claim.lease is not None:  # alone: builds of dead runs are nobody's
        drop_replaced(db, settings, collection=name)
        clock.lap("drop_replaced")  # outcome.phases is the clock's
    return outcome


def _create_empty(db: Database[dict[str, Any]], name: str) -> None:
    if name not in db.list_collection_names():
        db.create_collection(name)


def drop_replaced(
    db: Database[dict[str, Any]], settings: Settings, *, collection: str
) -> list[str]:
    """Drop what readers can no longer be served from: replaced collections beyond the
    newest ``mongo.keep_collections``, once ``mongo.drop_grace_s`` has passed since they
    were replaced, and builds of runs that died before their commit (never served). Call
    only while holding the ``sync`` lease (a running sync's build is not a dead run's).
    Failures are logged, not raised: the sync itself has landed, the next one retries.
    """
    cfg = settings.mongo
    try:
        state = with_retries(settings, read_state, db, collection=collection)
        served = state.served(collection)
        listed = {r.name for r in state.retired}
        cutoff = utcnow() - dt.timedelta(seconds=cfg.drop_grace_s)
        expired = [
            r.name
            for r in state.retired[cfg.keep_collections :]
            if r.at <= cutoff and r.name != served
        ]
        names = with_retries(settings, db.list_collection_names)
        dead = [n for n in names if is_build_of(collection, n) and n != served and n not in listed]
        for name in [*expired, *dead]:
            log.info(
                "dropping %s.%s (%s)", db.name, name, "replaced" if name in listed else "dead run"
            )
            with_retries(settings, db.drop_collection, name)
        with_retries(settings, forget_retired, db, collection=collection, names=expired)
    except PyMongoError as exc:
        log.warning("replaced collections of %s not dropped: %s", collection, exc)
        return []
    return [*expired, *dead]


def run_incremental(
    settings: Settings,
    db: Database[dict[str, Any]],
    *,
    claim: Claim,
    state: SyncState,
    version: int,
    changed: list[str],
    rows: Future[pa.Table],
) -> Outcome:
    """Replace-upsert the whole documents of ``changed`` customers, delete those gone from
    Delta, in the collection the pointer names."""
    name = settings.mongo.collection
    live = db[claim.served or name]
    clock = _Clock()
    with_retries(
        settings,
        mark_started,
        db,
        collection=name,
        mode="incremental",
        target_version=version,
        run_id=claim.run_id,
        from_version=claim.expected_version,
    )
    table = rows.result()
    changed_rows = rows_of(table, changed)
    present = set(pc.unique(changed_rows.column("customer_id")).to_pylist())
    deleted = [customer for customer in changed if customer not in present]
    clock.lap("read_delta")
    tally = WriteTally()
    with_retries(settings, _still_ours, db, name, claim, version)
    with _writing_live(db, settings, name=name, claim=claim, mode="incremental", version=version):
        if changed:
            docs = iter_documents(changed_rows, delta_version=version, synced_at=utcnow())
            upsert_and_delete(live, docs, deleted, settings=settings, tally=tally)
        clock.lap("write")
        expected = distinct_customers(table)
        trusted = (
            not state.interrupted and state.documents is not None and not tally.retried_batches
        )
        if trusted:
            assert state.documents is not None
            documents, method = state.documents + tally.upserted - tally.deleted, "tally"
        else:
            documents = with_retries(settings, count, live, expected=expected)
            method = "counted"
        half = settings.mongo.verify_sample_size // 2
        wanted = _changed_sample(changed_rows, deleted, k=half, seed=version)
        wanted.update(expected_models(table, _sample_ids(table, k=half, seed=version + 1)))
        verification = Verification(
            collection=f"{db.name}.{live.name}",
            expected_documents=expected,
            documents=documents,
            count_method=method,
            sampled=len(wanted),
            mismatches=with_retries(settings, compare_sample, live, wanted),
        )
        verification.raise_for_failure()
        clock.lap("verify")
        outcome = _finish(
            db,
            settings,
            claim=claim,
            table=table,
            name=name,
            version=version,
            mode="incremental",
            expected=expected,
            tally=tally,
            verification=verification,
            clock=clock,
        )
    if claim.lease is not None:  # what a full sync replaced outlives its grace here too
        drop_replaced(db, settings, collection=name)
        clock.lap("drop_replaced")
    return outcome


@contextlib.contextmanager
def _writing_live(
    db: Database[dict[str, Any]],
    settings: Settings,
    *,
    name: str,
    claim: Claim,
    mode: str,
    version: int,
) -> Iterator[None]:
    """From the first write into the live collection to the commit: a run that fails
    there (its compare-and-set refused, a write or the verification failing) while
    another run moved the watermark cannot know what it overwrote, so it clears the
    watermark and the next sync rebuilds in full. Alone (the lease held), a failed run
    leaves the watermark where it was, and the next run's change feed covers its writes."""
    try:
        yield
    except BaseException as exc:
        reason = (
            f"run {claim.run_id} ({mode}, version {version}) wrote into {name}, then "
            f"failed while another run moved the watermark: {type(exc).__name__}: {exc}"
        )
        try:
            cleared = with_retries(
                settings,
                invalidate,
                db,
                collection=name,
                reason=reason,
                unless_version=claim.expected_version,
                unless_run=claim.run_id,
            )
        except PyMongoError as err:  # the store is gone: the original error says more
            log.warning("sync %s: could not clear the watermark: %s", claim.run_id, err)
            raise exc from None
        if cleared and isinstance(exc, Exception):
            # Whatever failed (the compare-and-set, the verification finding the other
            # run's documents, a cursor lost to its drop), the cause is the other run:
            # one error type for it, naming both, so the caller can tell a race lost
            # cleanly from a broken store.
            log.error("sync %s: watermark cleared: %s", claim.run_id, reason)
            cause = "" if isinstance(exc, SyncConflictError) else f"{type(exc).__name__}: "
            raise SyncConflictError(
                f"{cause}{exc}. Another run moved the watermark while this one was writing "
                f"into {db.name}.{name} and its priors: the watermark was cleared, the next "
                "sync rebuilds the collection in full"
            ) from exc
        raise


def _finish(
    db: Database[dict[str, Any]],
    settings: Settings,
    *,
    claim: Claim,
    table: pa.Table,
    name: str,
    version: int,
    mode: str,
    expected: int,
    tally: WriteTally,
    verification: Verification,
    clock: _Clock,
    pointer: tuple[str, tuple[Retired, ...]] | None = None,
) -> Outcome:
    """Both paths end alike: priors, then the watermark (with ``pointer``, the full path's
    new collection and the replaced ones: the same write), only after every write succeeded."""
    _write_priors(db, settings, priors(table), version=version)
    with_retries(
        settings,
        commit,
        db,
        collection=name,
        delta_version=version,
        documents=expected,
        mode=mode,
        expected_version=claim.expected_version,
        run_id=claim.run_id,
        rewind=claim.rewind,
        active=None if pointer is None else pointer[0],
        retired=None if pointer is None else pointer[1],
    )
    clock.lap("priors_and_watermark")
    return Outcome(tally=tally, verification=verification, phases=clock.phases)


def _sample_ids(table: pa.Table, *, k: int, seed: int) -> list[str]:
    """Up to ``k`` distinct customers, drawn by row (no Python list of every customer id)."""
    rows = table.num_rows
    if rows == 0 or k <= 0:
        return []
    rng = random.Random(seed)
    column = table.column("customer_id")
    if rows <= 4 * k:  # small: an exact sample of the distinct ids
        ids = pc.unique(column).to_pylist()
        return rng.sample(ids, min(k, len(ids)))
    picked: dict[str, None] = {}
    for _ in range(8):  # a customer has a row per model: a few draws reach k distinct
        drawn = column.take(pa.array(rng.sample(range(rows), 2 * k))).to_pylist()
        picked.update(dict.fromkeys(drawn))
        if len(picked) >= k:
            break
    return list(picked)[:k]


def _changed_sample(
    rows: pa.Table, deleted: list[str], *, k: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Delta's fields for up to ``k`` changed customers; deleted ones must have no document."""
    gone = random.Random(seed).sample(deleted, min(k // 2, len(deleted)))
    wanted: dict[str, dict[str, Any]] = dict(
        expected_models(rows, _sample_ids(rows, k=k - len(gone), seed=seed))
    )
    wanted.update({customer: {} for customer in gone})
    return wanted


def _write_priors(
    db: Database[dict[str, Any]], settings: Settings, rows: list[dict[str, Any]], *, version: int
) -> None:
    """One prior per model still in current; priors of models gone from current are removed."""
    priors_coll = db[settings.mongo.collection + PRIORS_COLLECTION_SUFFIX]
    try:
        for attempt in retrying(settings):
            with attempt:
                for row in rows:
                    priors_coll.replace_one(
                        {"_id": row["_id"]}, {**row, "delta_version": version}, upsert=True
                    )
                priors_coll.delete_many({"_id": {"$nin": [row["_id"] for row in rows]}})
    except PyMongoError as exc:
        raise BatchWriteError(
            f"writing priors to {priors_coll.full_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
