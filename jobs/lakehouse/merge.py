"""Silver writes and the key-by-key view of a batch that row accounting is checked against.

``classify_batch`` tells, by key and value, what each row of a batch should become
(inserted, updated, a duplicate within the batch or of silver, superseded, a conflict);
``merge_silver`` writes the batch and reports what Delta committed. The two are computed
apart, so a row the write loses, or one it writes twice, shows as a difference between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lakehouse.rules import conflicting_resend
from jobs.platform import last_commit, table_path
from schemas.settings import Settings
from schemas.tables import TableSpec


def latest_per_key(rows: DataFrame, *, key: str) -> DataFrame:
    """One row per key: the row whose values sort last (deterministic, whatever the file order)."""
    others = [c for c in rows.columns if c != key]
    order = Window.partitionBy(key).orderBy(*[F.col(c).desc_nulls_last() for c in others])
    return rows.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


@dataclass(frozen=True, kw_only=True)
class BatchKeys:
    """What a batch's rows are, found by key and value against silver at one version.

    Every row of the batch is in exactly one count: ``invalid`` (broke a typing rule),
    ``conflicts`` (immutable sources only: every row of a key sent with other values than
    silver holds, or with different values within the batch), or, per remaining key, one
    row that is new (``new_keys``), changes silver (``changed_keys``, with
    ``update_changed``) or equals silver (``duplicates_in_silver``); the key's other rows
    equal to that row are ``duplicates_in_batch``, and those with other values (only with
    ``update_changed``: the row whose values sort last wins, as in ``latest_per_key``)
    are ``superseded``.
    """

    rows: int
    invalid: int
    new_keys: int
    changed_keys: int
    duplicates_in_batch: int
    duplicates_in_silver: int
    superseded: int
    conflicts: int
    conflicting: tuple[tuple[str, str], ...]  # (key, quarantine reason) of each conflicting key


def _digest(values: list[str]) -> Column:
    """A 64-bit hash of the value columns; null fields marked (Spark's hash skips nulls)."""
    return F.xxhash64(*[F.col(c) for c in values], F.array(*[F.col(c).isNull() for c in values]))


def classify_batch(
    rows: DataFrame,
    silver: DataFrame | None,
    *,
    key: str,
    values: list[str],
    update_changed: bool,
) -> BatchKeys:
    """Classify ``rows`` (the silver columns plus ``reason``, null for rows that pass the
    rules) against ``silver`` (None: empty), in one Spark job of cheap aggregations.

    Rows are compared on ``values`` through a 64-bit hash per row. Immutable sources
    (orders) take one grouping by key (count, min and max hash); with ``update_changed``
    (profiles) a grouping by key and hash first finds the winning values of each key
    and how many rows carry them. A non-empty ``silver`` adds one join of the batch's
    keys with silver's (key, hash).
    """
    good = F.col("reason").isNull()
    tagged = rows.select(
        F.when(good, F.col(key)).alias("_key"),
        F.when(good, _digest(values)).alias("_h"),
        good.cast("long").alias("_good"),
        *(
            [F.when(good, F.struct(*[F.col(c) for c in values])).alias("_v")]
            if update_changed
            else []
        ),
    )
    if update_changed:
        variants = tagged.groupBy("_key", "_h").agg(
            F.count(F.lit(1)).alias("n"), F.sum("_good").alias("n_good"), F.max("_v").alias("_v")
        )
        per_key = variants.groupBy("_key").agg(
            F.sum("n").alias("n"),
            F.sum("n_good").alias("n_good"),
            (F.count(F.lit(1)) == 1).alias("clean"),
            F.max(F.struct("_v", "_h", "n_good")).alias("_w"),
        )
        per_key = per_key.select(
            "_key",
            "n",
            "n_good",
            "clean",
            F.col("_w._h").alias("wh"),
            F.col("_w.n_good").alias("wn"),
        )
    else:
        per_key = tagged.groupBy("_key").agg(
            F.count(F.lit(1)).alias("n"),
            F.sum("_good").alias("n_good"),
            (F.min("_h") == F.max("_h")).alias("clean"),
            F.min("_h").alias("wh"),
        )
        per_key = per_key.withColumn("wn", F.col("n_good"))
    if silver is None:
        joined = per_key.select("*", F.lit(None).cast("long").alias("sh"), F.lit(False).alias("in"))
    else:
        keys = silver.select(
            F.col(key).alias("_key"), _digest(values).alias("sh"), F.lit(True).alias("in")
        )
        joined = per_key.join(keys, "_key", "left")
    keyed = F.col("_key").isNotNull()
    in_silver = keyed & F.coalesce(F.col("in"), F.lit(False))
    same = in_silver & (F.col("sh") == F.col("wh"))
    if update_changed:
        conflict = F.lit(False)
        dup_batch = F.col("wn") - 1
        superseded = F.col("n_good") - F.col("wn")
    else:
        conflict = keyed & (~F.col("clean") | (in_silver & ~same))
        dup_batch = F.when(conflict, 0).otherwise(F.col("n_good") - 1)
        superseded = F.lit(0)
    kept = keyed & ~conflict
    reason = conflicting_resend(key, F.col("_key"), same_batch=~F.col("clean"))

    def count(flag: Column) -> Column:
        return F.sum(flag.cast("long"))

    row = joined.agg(
        F.sum("n").alias("rows"),
        F.sum(F.col("n") - F.col("n_good")).alias("invalid"),
        count(kept & ~in_silver).alias("new_keys"),
        count(kept & in_silver & ~same).alias("changed_keys"),
        F.sum(F.when(kept, dup_batch)).alias("duplicates_in_batch"),
        count(kept & same).alias("duplicates_in_silver"),
        F.sum(F.when(kept, superseded)).alias("superseded"),
        F.sum(F.when(conflict, F.col("n_good"))).alias("conflicts"),
        F.collect_list(F.when(conflict, F.struct("_key", reason))).alias("conflicting"),
    ).first()
    assert row is not None  # a global aggregation has one row
    counts = {name: int(row[name] or 0) for name in row.asDict() if name != "conflicting"}
    return BatchKeys(
        **counts, conflicting=tuple((str(k), str(r)) for k, r in row["conflicting"] or [])
    )


@dataclass(frozen=True, kw_only=True)
class SilverCommit:
    """What one silver write committed: its version (the version read when it committed
    nothing) and the rows inserted and updated, from that commit's operation metrics."""

    version: int
    inserted: int
    updated: int


def merge_silver(
    spark: SparkSession,
    settings: Settings,
    spec: TableSpec,
    *,
    rows: DataFrame,
    key: str,
    update_changed: bool,
    read_version: int,
    empty: bool,
    deduplicate: bool = True,
) -> SilverCommit:
    """Write ``rows`` deduplicated on ``key`` into silver, read at ``read_version``.

    With ``update_changed``, keys silver already holds are updated when a value other
    than ``batch_id`` changed (re-sent identical rows change nothing); without it, rows
    whose key silver holds are left out. ``empty`` (silver had no row at
    ``read_version``): the rows are appended directly (the first, largest load skips the
    merge join), sorted within each file by ``spec.sort_within_files``. ``deduplicate``
    False: the caller knows the rows hold one row per key, and the shuffle that
    deduplicates is skipped.
    """
    path = table_path(settings, spec)
    target = DeltaTable.forPath(spark, path)
    unique = rows
    if deduplicate:
        unique = latest_per_key(rows, key=key) if update_changed else rows.dropDuplicates([key])
    if empty:
        if spec.sort_within_files:
            unique = unique.sortWithinPartitions(*spec.sort_within_files)
        unique.write.format("delta").mode("append").save(path)
    else:
        values = [c for c in spec.columns if c not in (key, "batch_id")]
        changed = " OR ".join(f"NOT (s.{c} <=> b.{c})" for c in values)
        merge = target.alias("s").merge(unique.alias("b"), f"s.{key} = b.{key}")
        if update_changed:  # e.g. profiles take the latest values; orders are immutable once seen
            merge = merge.whenMatchedUpdateAll(condition=changed)
        merge.whenNotMatchedInsertAll().execute()
    version, metrics = last_commit(spark, settings, spec)
    if version == read_version:  # nothing to write: Delta committed nothing
        return SilverCommit(version=version, inserted=0, updated=0)
    if empty:
        return SilverCommit(version=version, inserted=int(metrics["numOutputRows"]), updated=0)
    return SilverCommit(
        version=version,
        inserted=int(metrics["numTargetRowsInserted"]),
        updated=int(metrics["numTargetRowsUpdated"]),
    )
