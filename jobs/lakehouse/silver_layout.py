"""Rewrite a table in the order its spec keeps within files (``TableSpec.sort_within_files``).

The first load writes ``silver.orders`` sorted by (customer, order date); later ingests
go through a merge, whose files come in the join's order. ``resort_table`` rewrites the
whole table range-partitioned and sorted in that order, in one commit marked
``dataChange=false`` (a rearrangement of the same rows: streaming and change-feed readers
see nothing new). It reads one pinned version; a write committed meanwhile makes this
commit fail Delta's conflict check, so no row is lost or doubled, and running it again
retries. ``lakescore resort-silver`` runs it, and so does the weekly ``silver_maintenance``
Dagster job, when ``needs_resort`` finds a commit since the last rewrite that can have
left rows out of order (a merge, an update, a delete); otherwise it skips the rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.platform import last_commit, read_table, table_path, table_version
from schemas.settings import Settings
from schemas.tables import TableSpec

# The rewrite's commit carries this as its userMetadata, so that later runs can find it.
RESORT_MARK = "lakescore resort"
# Commits that keep every file sorted: creating the table, appends (the first load sorts
# its files: jobs.lakehouse.merge), changes of table metadata and VACUUM (the weekly
# retention: it deletes only files out of the table). Anything else (MERGE, UPDATE,
# DELETE, OPTIMIZE, RESTORE, ...) may write files in another order.
_KEEP_ORDER = {
    "CREATE TABLE",
    "WRITE",
    "SET TBLPROPERTIES",
    "UNSET TBLPROPERTIES",
    "ADD COLUMNS",
    "VACUUM START",
    "VACUUM END",
}


@dataclass(frozen=True, kw_only=True)
class ResortResult:
    table: str
    rows: int
    files_before: int
    files_after: int
    read_version: int
    version: int


def resort_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> ResortResult:
    """Rewrite ``spec``'s table sorted by ``spec.sort_within_files`` (one commit, same rows)."""
    if not spec.sort_within_files:
        raise ValueError(f"{spec.name} declares no sort order (TableSpec.sort_within_files)")
    if spec.partition_by:
        raise ValueError(
            f"{spec.name} is partitioned; only whole unpartitioned tables are resorted"
        )
    version = table_version(spark, settings, spec)
    frame = read_table(spark, settings, spec, version=version)
    files_before = len(frame.inputFiles())
    order = list(spec.sort_within_files)
    # Range partitions: each file then holds its own run of customers, sorted inside.
    (
        frame.repartitionByRange(*order)
        .sortWithinPartitions(*order)
        .write.format("delta")
        .mode("overwrite")
        .option("dataChange", "false")
        .option("userMetadata", RESORT_MARK)
        .save(table_path(settings, spec))
    )
    committed, metrics = last_commit(spark, settings, spec)
    return ResortResult(
        table=spec.name,
        rows=int(metrics.get("numOutputRows", 0)),
        files_before=files_before,
        files_after=int(metrics.get("numFiles", 0)),
        read_version=version,
        version=committed,
    )


def needs_resort(spark: SparkSession, settings: Settings, spec: TableSpec) -> bool:
    """Whether a commit since the last rewrite (or since creation) may have unsorted files.

    Read from the table's history, newest first, up to the last rewrite: True at the first
    commit that is neither an append nor a metadata change. An overwrite counts as keeping
    the order only when it is the rewrite itself.
    """
    history = (
        DeltaTable.forPath(spark, table_path(settings, spec))
        .history()
        .select("version", "operation", "operationParameters", "userMetadata")
        .orderBy(F.col("version").desc())
        .collect()
    )
    for commit in history:
        if commit["userMetadata"] == RESORT_MARK:
            return False
        mode = (commit["operationParameters"] or {}).get("mode", "")
        if commit["operation"] not in _KEEP_ORDER or mode == "Overwrite":
            return True
    return False
