"""Deduplicating writes into silver: insert new keys, update changed ones, count what was written."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.platform import table_path
from schemas.settings import Settings
from schemas.tables import TableSpec


def latest_per_key(rows: DataFrame, *, key: str) -> DataFrame:
    """One row per key: the row whose values sort last (deterministic, whatever the file order)."""
    others = [c for c in rows.columns if c != key]
    order = Window.partitionBy(key).orderBy(*[F.col(c).desc_nulls_last() for c in others])
    return rows.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def merge_silver(
    spark: SparkSession,
    settings: Settings,
    spec: TableSpec,
    *,
    rows: DataFrame,
    key: str,
    update_changed: bool,
) -> int:
    """Write ``rows`` deduplicated on ``key``; return how many silver rows were inserted or changed.

    With ``update_changed``, keys silver already holds are updated when a value other
    than ``batch_id`` changed (re-sent identical rows count as duplicates); without it,
    rows whose key silver holds are dropped as duplicates. An empty silver table is
    appended to directly (the first, largest load skips the merge join), its rows sorted
    within each file by ``spec.sort_within_files``.
    """
    path = table_path(settings, spec)
    target = DeltaTable.forPath(spark, path)
    unique = latest_per_key(rows, key=key) if update_changed else rows.dropDuplicates([key])
    if spark.read.format("delta").load(path).limit(1).count() == 0:
        if spec.sort_within_files:
            unique = unique.sortWithinPartitions(*spec.sort_within_files)
        unique.write.format("delta").mode("append").save(path)
        return _last_metric(target, "numOutputRows")
    values = [c for c in spec.columns if c not in (key, "batch_id")]
    changed = " OR ".join(f"NOT (s.{c} <=> b.{c})" for c in values)
    merge = target.alias("s").merge(unique.alias("b"), f"s.{key} = b.{key}")
    if update_changed:  # e.g. profiles take the latest values; orders are immutable once seen
        merge = merge.whenMatchedUpdateAll(condition=changed)
    merge.whenNotMatchedInsertAll().execute()
    return _last_metric(target, "numTargetRowsInserted") + _last_metric(
        target, "numTargetRowsUpdated"
    )


def _last_metric(table: DeltaTable, name: str) -> int:
    last = table.history(1).select("operationMetrics").first()
    metrics = (last[0] if last else None) or {}
    return int(metrics.get(name, 0))
