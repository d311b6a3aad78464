"""Batched writes into the serving store: bounded retries of transient errors, named failures.

Every batch is idempotent, so a retry (or a re-run after a crash) converges:
inserts into a fresh build collection accept duplicate keys on a retry (the first
attempt wrote them), replace-upserts and deletes by ``_id`` can run any number of times.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import DeleteOne, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, PyMongoError

from jobs.platform import DUPLICATE_KEY, retrying
from schemas.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)


class SyncError(RuntimeError):
    """The sync stopped; the watermark is unchanged, so a re-run converges."""


class BatchWriteError(SyncError):
    """One batch could not be written (after retries of transient errors)."""


@dataclass(kw_only=True)
class WriteTally:
    batches: int = 0
    inserted: int = 0
    upserted: int = 0  # new documents created by replace-upserts
    replaced: int = 0
    deleted: int = 0
    retried_batches: int = 0


def prefetch(items: Iterable[T], *, depth: int = 2) -> Iterator[T]:
    """Produce ``items`` in a thread, so building the next batch overlaps writing this one."""
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put(exc)

    thread = threading.Thread(target=produce, name="sync-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def brief(exc: PyMongoError) -> str:
    """The error without the echo of every failed document (a bulk error can be megabytes)."""
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        errors = details.get("writeErrors", []) + details.get("writeConcernErrors", [])
        first = errors[0] if errors else {}
        return (
            f"{len(errors)} write error(s), first: code {first.get('code')}: "
            f"{str(first.get('errmsg', ''))[:300]}"
        )
    return str(exc)[:1000]


def _describe(index: int, first: int, ids: list[Any], target: str) -> str:
    span = f"{ids[0]!r}..{ids[-1]!r}" if ids else "none"
    return f"batch {index} (operations {first}..{first + len(ids) - 1}, _id {span}) of {target}"


def _run(
    write: Callable[[int], None], *, settings: Settings, tally: WriteTally, label: str
) -> None:
    attempts = 0
    try:
        for attempt in retrying(settings):
            with attempt:
                attempts += 1
                write(attempts)
    except PyMongoError as exc:
        raise BatchWriteError(
            f"{label} failed after {attempts} attempt(s): {type(exc).__name__}: {brief(exc)}"
        ) from exc
    tally.batches += 1
    tally.retried_batches += attempts > 1


def insert_batches(
    collection: Collection[dict[str, Any]],
    batches: Iterable[list[dict[str, Any]]],
    *,
    settings: Settings,
    tally: WriteTally,
) -> None:
    """Unordered ``insert_many`` per batch into a collection nobody else writes."""
    first = 0
    for index, batch in enumerate(prefetch(batches)):

        def write(attempt: int, batch: list[dict[str, Any]] = batch, index: int = index) -> None:
            try:
                collection.insert_many(batch, ordered=False)
            except BulkWriteError as exc:
                errors = (exc.details or {}).get("writeErrors", [])
                # Nobody else writes the build collection: a duplicate is a document an earlier
                # attempt (ours, or the driver's own retry) already wrote. The count and the
                # sample are verified before the commit anyway.
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                log.warning("batch %s: %s documents were already written", index, len(errors))

        target = f"{collection.database.name}.{collection.name}"
        label = _describe(index, first, [d["_id"] for d in batch], target)
        _run(write, settings=settings, tally=tally, label=label)
        tally.inserted += len(batch)
        first += len(batch)


def upsert_and_delete(
    collection: Collection[dict[str, Any]],
    docs: Iterable[dict[str, Any]],
    deleted_ids: list[str],
    *,
    settings: Settings,
    tally: WriteTally,
) -> None:
    """Unordered replace-upserts of whole documents by ``_id``, then deletes by ``_id``."""
    size = settings.mongo.batch_size
    target = f"{collection.database.name}.{collection.name}"

    def operations() -> Iterator[tuple[list[str], list[ReplaceOne[Any] | DeleteOne]]]:
        ids: list[str] = []
        batch: list[ReplaceOne[Any] | DeleteOne] = []
        for doc in docs:
            ids.append(doc["_id"])
            batch.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
            if len(batch) >= size:
                yield ids, batch
                ids, batch = [], []
        for customer in deleted_ids:
            ids.append(customer)
            batch.append(DeleteOne({"_id": customer}))
            if len(batch) >= size:
                yield ids, batch
                ids, batch = [], []
        if batch:
            yield ids, batch

    first = 0
    for index, (ids, ops) in enumerate(prefetch(operations())):
        outcome: dict[str, int] = {}

        def write(attempt: int, ops: list[Any] = ops, outcome: dict[str, int] = outcome) -> None:
            result = collection.bulk_write(ops, ordered=False)
            outcome.update(
                upserted=result.upserted_count,
                replaced=result.matched_count,
                deleted=result.deleted_count,
                attempts=attempt,
            )

        _run(write, settings=settings, tally=tally, label=_describe(index, first, ids, target))
        tally.upserted += outcome["upserted"]
        tally.replaced += outcome["replaced"]
        tally.deleted += outcome["deleted"]
        first += len(ops)
