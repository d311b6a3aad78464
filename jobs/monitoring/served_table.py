"""Compaction of ``monitoring.served``: the API appends one small file per process and flush
(2,880 a day for one process at ``api.served_log_flush_s`` 30 s); the weekly maintenance
rewrites each closed day's files into a few large ones.

Only days before ``before`` are compacted: the API may still append to today's partition
(an append never conflicts with a compaction in Delta's protocol, but the day would be
left with small files again). The rewrite is Delta's ``OPTIMIZE`` (``dataChange=false``:
the same rows, readers of older versions unaffected); the files it replaced are deleted
by a later VACUUM, after ``retention.vacuum_hours``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from jobs.platform import table_exists, table_path
from schemas.settings import Settings
from schemas.tables import SERVED


@dataclass(frozen=True, kw_only=True)
class ServedCompaction:
    files_removed: int
    files_added: int
    before: dt.date


def compact_served(spark: SparkSession, settings: Settings, *, before: dt.date) -> ServedCompaction:
    """Compact every ``served_date`` partition before ``before`` (no table: nothing)."""
    if not table_exists(spark, settings, SERVED):
        return ServedCompaction(files_removed=0, files_added=0, before=before)
    table = DeltaTable.forPath(spark, table_path(settings, SERVED))
    metrics = (
        table.optimize()
        .where(f"served_date < DATE'{before.isoformat()}'")
        .executeCompaction()
        .select("metrics.numFilesRemoved", "metrics.numFilesAdded")
        .first()
    )
    removed, added = (int(metrics[0] or 0), int(metrics[1] or 0)) if metrics else (0, 0)
    return ServedCompaction(files_removed=removed, files_added=added, before=before)
