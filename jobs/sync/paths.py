"""The two sync paths: build-and-swap, and incremental upserts/deletes from the change feed.

Both mark the run as started in ``sync_state`` before the first write, verify after
the last one, and leave advancing the watermark (``commit``) as the very last step.
Both take the snapshot of the target version (Arrow, read in a thread while the
change feed is read) and draw the documents, the expected count, the verification
sample and the priors from it.

One writer at a time: right before the first write into the live collection (the
incremental upserts, the full path's swap) a run checks that it still holds the
``sync`` lease and that the watermark is still the version it read when it started;
otherwise it stops with ``SyncConflictError`` and has changed nothing the API reads.
The watermark then moves by compare-and-set from that version; a run that loses it
after writing clears the watermark, so the next sync rebuilds in full.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymongo
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from jobs.platform import Lease, LeaseLostError, retrying, with_retries, write_concern
from jobs.sync.changes import distinct_customers, priors, rows_of
from jobs.sync.documents import batched, expected_models, iter_documents
from jobs.sync.state import (
    SyncConflictError,
    SyncState,
    check_unchanged,
    commit,
    invalidate,
    mark_started,
    utcnow,
)
from jobs.sync.verify import Verification, compare_sample, count
from jobs.sync.writes import BatchWriteError, WriteTally, insert_batches, upsert_and_delete
from schemas.serving import PRIORS_COLLECTION_SUFFIX
from schemas.settings import Settings

log = logging.getLogger(__name__)
BUILD_SUFFIX = "__build"
NAMESPACE_NOT_FOUND = 26


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What this run read when it started, and what it holds: checked before it writes."""

    run_id: str
    expected_version: int | None  # the watermark read when the run started
    lease: Lease | None  # the ``sync`` lease (None: the caller holds none)
    rewind: bool = False  # the table was recreated: its versions started again


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
    build = db[name + BUILD_SUFFIX]
    with_retries(settings, build.drop)
    docs = iter_documents(table, delta_version=version, synced_at=utcnow())
    batches = batched(docs, size=settings.mongo.batch_size)
    insert_batches(build, batches, settings=settings, tally=tally)
    if not tally.inserted:
        db.create_collection(build.name)  # an empty current: swap in an empty collection
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
    verification.raise_for_failure()  # the live collection is untouched
    clock.lap("verify")
    with_retries(settings, _still_ours, db, name, claim, version)
    with _writing_live(db, settings, name=name, claim=claim, mode="full", version=version):
        _swap(db, source=build.name, target=name, settings=settings, documents=tally.inserted)
        clock.lap("swap")
        return _finish(
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
        )


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
    """Replace-upsert the whole documents of ``changed`` customers, delete those gone from Delta."""
    name = settings.mongo.collection
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
            upsert_and_delete(db[name], docs, deleted, settings=settings, tally=tally)
        clock.lap("write")
        expected = distinct_customers(table)
        trusted = (
            not state.interrupted and state.documents is not None and not tally.retried_batches
        )
        if trusted:
            assert state.documents is not None
            documents, method = state.documents + tally.upserted - tally.deleted, "tally"
        else:
            documents = with_retries(settings, count, db[name], expected=expected)
            method = "counted"
        half = settings.mongo.verify_sample_size // 2
        wanted = _changed_sample(changed_rows, deleted, k=half, seed=version)
        wanted.update(expected_models(table, _sample_ids(table, k=half, seed=version + 1)))
        verification = Verification(
            collection=f"{db.name}.{name}",
            expected_documents=expected,
            documents=documents,
            count_method=method,
            sampled=len(wanted),
            mismatches=with_retries(settings, compare_sample, db[name], wanted),
        )
        verification.raise_for_failure()
        clock.lap("verify")
        return _finish(
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
            # run's documents, a cursor lost to its swap), the cause is the other run:
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
) -> Outcome:
    """Both paths end alike: priors, then the watermark, only after every write succeeded."""
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


def swap_deadline_s(settings: Settings, *, documents: int) -> float:
    """The swap's deadline in seconds: ``mongo.swap_ms_per_document`` for each document of
    the build collection, never less than ``mongo.swap_timeout_ms`` (servers that copy on
    rename take time in proportion to the collection: 49.6 s for 758,134 documents on the
    local server)."""
    cfg = settings.mongo
    return max(cfg.swap_timeout_ms, max(documents, 0) * cfg.swap_ms_per_document) / 1000


def _swap(
    db: Database[dict[str, Any]],
    *,
    source: str,
    target: str,
    settings: Settings,
    documents: int = 0,
) -> None:
    """Rename the verified build collection over the live one, atomically for readers,
    waiting up to ``swap_deadline_s`` for it (not the shorter socket timeout)."""
    deadline_s = swap_deadline_s(settings, documents=documents)
    attempts = 0
    try:
        for attempt in retrying(settings):
            with attempt:
                attempts += 1
                try:
                    with pymongo.timeout(deadline_s):
                        db.client.admin.command(
                            "renameCollection",
                            f"{db.name}.{source}",
                            to=f"{db.name}.{target}",
                            dropTarget=True,
                            writeConcern=write_concern(settings).document,
                        )
                except OperationFailure as exc:
                    # A retried rename whose first attempt went through finds no source.
                    if attempts > 1 and exc.code == NAMESPACE_NOT_FOUND:
                        return
                    raise
    except PyMongoError as exc:
        raise BatchWriteError(
            f"swapping {db.name}.{source} in as {db.name}.{target} failed after "
            f"{attempts} attempt(s) of up to {deadline_s:g} s ({documents} documents): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


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
