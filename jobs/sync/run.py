"""Sync ``predictions.current`` into the serving store (MongoDB): incremental or blue/green.

The path is chosen by what changed since the synced Delta version (the watermark in
``sync_state``), read through the table's change data feed:

- incremental, when at most ``mongo.incremental_max_fraction`` of the customers
  changed: the changed customers' whole documents are replace-upserted by ``_id``
  (every model of the customer, rebuilt from Delta) and customers gone from
  current are deleted by ``_id``, in unordered batches;
- blue/green, when most changed, on the first load, when the feed cannot be read
  from the watermark (vacuumed, disabled, table recreated), when the deployment still
  serves from the single collection of before pointers (it migrates on its first
  run), and on demand (``mode="full"``): a new collection is written and verified,
  then the watermark document points readers at it in one write, so readers never
  see a half-built collection (``jobs/sync/paths.py``).

After the writes, the result is verified (document count = distinct customers,
a sample equal to Delta field by field); only then the watermark advances.
Every write is idempotent, so a crash at any point followed by a re-run
converges to exactly the Delta state.

One writer at a time: a sync holds the ``sync`` lease (``leases`` collection) from
before it reads the watermark until after it moved it, so a second sync (the
command line, the nightly asset, a rollback's resync) is refused, naming the
holder, or waits ``lease.wait_s``. The watermark is read before the Delta version
(a watermark another sync committed is never newer than the table read after it),
and it moves only by compare-and-set from the version read at the start
(``jobs/sync/state.py``); ``jobs/sync/paths.py`` checks lease and watermark once
more right before the first write into the live collection.

Runs alone: ``python -m jobs.sync [--mode auto|full|incremental]`` (jobs/sync/__main__.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pyspark.sql import SparkSession

from jobs.platform import (
    SYNC_LEASE,
    default_holder,
    hold_lease,
    mongo_client,
    serving_db,
    table_exists,
    with_retries,
)
from jobs.sync.changes import ChangesUnavailable, changed_ids, latest_version, snapshot
from jobs.sync.paths import Claim, Outcome, run_full, run_incremental
from jobs.sync.state import SyncState, read_state
from jobs.sync.verify import Verification
from jobs.sync.writes import SyncError
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT

log = logging.getLogger(__name__)
Mode = Literal["auto", "full", "incremental"]


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    mode: str  # the path taken: "full" or "incremental"
    reason: str
    delta_version: int
    previous_version: int | None
    documents: int
    changed_customers: int | None  # None when the change feed was not read
    upserted: int
    deleted: int
    batches: int
    retried_batches: int
    verification: Verification
    seconds: float
    phases: dict[str, float]  # seconds per phase: choosing the path, then the path's own

    @property
    def verified_sample(self) -> int:
        return self.verification.sampled

    @property
    def mismatches(self) -> list[str]:
        return self.verification.mismatches

    def metadata(self) -> dict[str, Any]:
        """Flat values for Dagster asset metadata."""
        out = {k: v for k, v in asdict(self).items() if k not in ("verification", "phases")}
        out.update({f"seconds_{phase}": s for phase, s in self.phases.items()})
        out["previous_version"] = -1 if self.previous_version is None else self.previous_version
        out["changed_customers"] = -1 if self.changed_customers is None else self.changed_customers
        v = self.verification
        out.update(
            verified=v.ok,
            expected_documents=v.expected_documents,
            count_method=v.count_method,
            verified_sample=v.sampled,
            mismatches=len(v.mismatches),
            verification=v.summary(),
        )
        return out


def sync(
    spark: SparkSession,
    settings: Settings,
    *,
    mode: Mode = "auto",
    batch_size: int | None = None,
    lease_owner: str | None = None,
) -> SyncResult:
    """Bring the serving collection to the latest version of ``predictions.current``.

    ``lease_owner``: who retries this sync (the Dagster run and asset): the ``sync`` lease
    an earlier attempt of the same owner failed to release is re-taken, not waited for.
    """
    if batch_size is not None:
        mongo = settings.mongo.model_copy(update={"batch_size": batch_size})
        settings = settings.model_copy(update={"mongo": mongo})
    if not table_exists(spark, settings, PREDICTIONS_CURRENT):
        raise SyncError(f"{PREDICTIONS_CURRENT.name} does not exist yet: run scoring first")
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    client = mongo_client(settings)
    try:
        db = serving_db(client, settings)
        with hold_lease(
            db,
            name=SYNC_LEASE,
            holder=f"{default_holder()} sync {run_id}",
            owner=lease_owner,
            ttl_s=settings.lease.ttl_s,
            wait_s=settings.lease.wait_s,
            release_attempts=settings.lease.release_attempts,
        ) as lease:
            # The watermark first: any version another sync committed is at most the
            # table's version read after it, so "watermark ahead" means a recreated table.
            state = with_retries(settings, read_state, db, collection=settings.mongo.collection)
            version = latest_version(spark, settings)
            claim = Claim(
                run_id=run_id,
                expected_version=state.delta_version,
                lease=lease,
                rewind=state.delta_version is not None and state.delta_version > version,
                served=state.active,
                retired=state.retired,
            )
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-snapshot") as pool:
                # Delta's snapshot is read while the change feed is: both are native code.
                rows = pool.submit(snapshot, spark, settings, version=version)
                choosing = time.perf_counter()
                path, reason, changed = _choose(
                    spark, settings, state=state, version=version, mode=mode
                )
                chosen = round(time.perf_counter() - choosing, 3)  # mostly the change feed
                log.info("sync %s to version %s: %s (%s)", run_id, version, path, reason)
                outcome: Outcome
                if path == "incremental":
                    assert changed is not None
                    outcome = run_incremental(
                        settings,
                        db,
                        claim=claim,
                        state=state,
                        version=version,
                        changed=changed,
                        rows=rows,
                    )
                else:
                    outcome = run_full(settings, db, claim=claim, version=version, rows=rows)
    finally:
        client.close()
    return SyncResult(
        mode=path,
        reason=reason,
        delta_version=version,
        previous_version=state.delta_version,
        documents=outcome.verification.documents,
        changed_customers=None if changed is None else len(changed),
        upserted=outcome.tally.inserted + outcome.tally.upserted + outcome.tally.replaced,
        deleted=outcome.tally.deleted,
        batches=outcome.tally.batches,
        retried_batches=outcome.tally.retried_batches,
        verification=outcome.verification,
        seconds=time.perf_counter() - started,
        phases={"choose_path": chosen, **outcome.phases},
    )


def sync_full(spark: SparkSession, settings: Settings, **options: Any) -> SyncResult:
    """Build a new collection from the current Delta state and point readers at it (one write)."""
    return sync(spark, settings, mode="full", **options)


def _choose(
    spark: SparkSession, settings: Settings, *, state: SyncState, version: int, mode: Mode
) -> tuple[str, str, list[str] | None]:
    """The path, why, and (incremental) the changed customers."""
    if mode == "full":
        return "full", "requested", None
    since = state.delta_version
    if since is None:
        if mode == "incremental":
            raise SyncError("incremental sync requested but nothing was synced yet (no watermark)")
        return "full", "first load: no watermark", None
    if state.active is None and mode != "incremental":
        return "full", "migrating to blue/green: the watermark names no collection yet", None
    if since > version:
        reason = f"watermark {since} is ahead of {PREDICTIONS_CURRENT.name} version {version}"
        if mode == "incremental":
            raise SyncError(f"incremental sync impossible: {reason}")
        return "full", reason + " (table recreated?)", None
    if since == version:
        return "incremental", f"no change since version {since}", []
    threshold = settings.mongo.incremental_max_fraction
    known = state.documents
    limit = None if mode == "incremental" or known is None else int(threshold * known)
    try:
        ids = changed_ids(spark, settings, since=since, until=version, limit=limit)
    except ChangesUnavailable as exc:
        if mode == "incremental":
            raise SyncError(f"incremental sync impossible: {exc}") from exc
        return "full", f"recovery: {exc}", None
    if ids is None:
        return "full", f"more than {limit} customers changed (> {threshold:.0%} of {known})", None
    fraction = len(ids) / max(known or 0, len(ids), 1)
    if mode == "auto" and fraction > threshold:
        return "full", f"{len(ids)} customers changed ({fraction:.1%} > {threshold:.0%})", None
    return "incremental", f"{len(ids)} customers changed ({fraction:.1%})", ids


def synced_version(settings: Settings) -> int | None:
    client = mongo_client(settings)
    try:
        return read_state(
            serving_db(client, settings), collection=settings.mongo.collection
        ).delta_version
    finally:
        client.close()
