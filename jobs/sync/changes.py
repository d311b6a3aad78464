"""What the sync reads from Delta: the latest version, the change feed, snapshots, priors.

The change data feed and snapshots (every row of one version) are read with
delta-rs when it can read the table (a local or object-store path, no reader
feature it lacks): Parquet straight into Arrow in native code, no Spark job to
schedule (the change feed's customer ids of a 5% rescore of 1M rows: about 0.05 s
with delta-rs ``load_cdf``, 2-5 s with a Spark job). Otherwise, and whenever
delta-rs refuses the change feed, Spark reads it (and decides whether it is
unavailable); snapshots fall back to Spark's ``toArrow``. Snapshots have the
columns ``SYNC_COLUMNS`` (``score_date`` as an ISO string), sorted by customer
and model.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.platform import read_table, table_path, table_version
from jobs.sync.documents import SHADOW_TYPES, SYNC_COLUMNS, sort_rows, sync_rows, to_arrow
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT

log = logging.getLogger(__name__)


class ChangesUnavailable(RuntimeError):
    """The change data feed cannot be read from the synced version (vacuumed, disabled, ...)."""


def current_at(spark: SparkSession, settings: Settings, version: int) -> DataFrame:
    return read_table(spark, settings, PREDICTIONS_CURRENT, version=version)


def latest_version(spark: SparkSession, settings: Settings) -> int:
    try:
        from deltalake import DeltaTable

        return int(DeltaTable(table_path(settings, PREDICTIONS_CURRENT)).version())
    except Exception as exc:  # any reason delta-rs cannot open it: Spark can
        log.info("delta-rs cannot read the version (%s); asking Spark", exc)
        return table_version(spark, settings, PREDICTIONS_CURRENT)


def changed_ids(
    spark: SparkSession, settings: Settings, *, since: int, until: int, limit: int | None
) -> list[str] | None:
    """Customers with any change in versions ``since+1 .. until``; None when more than ``limit``.

    Any superset of the changed customers would be correct (their documents are
    rebuilt from the snapshot); missing one never is, so an unreadable feed raises.
    """
    try:
        ids = _changed_ids_rust(settings, since=since, until=until)
    except Exception as exc:  # feed disabled or vacuumed, a feature delta-rs lacks, ...: ask Spark
        log.info("delta-rs cannot read the change feed (%s); reading with Spark", exc)
        ids = _changed_ids_spark(spark, settings, since=since, until=until, limit=limit)
    return None if limit is not None and len(ids) > limit else ids


def _changed_ids_rust(settings: Settings, *, since: int, until: int) -> list[str]:
    """The change feed's distinct customer ids, read by delta-rs (two columns, no Spark job).

    delta-rs raises when a commit of the range turns the feed off (Spark then decides);
    for a commit that wrote no change files it reports every row of the files the
    commit added and removed: a superset of the changed rows, still correct here.
    """
    from deltalake import DeltaTable

    reader = DeltaTable(table_path(settings, PREDICTIONS_CURRENT)).load_cdf(
        starting_version=since + 1,
        ending_version=until,
        columns=["customer_id", "_change_type"],
    )
    feed = pa.RecordBatchReader.from_stream(reader).read_all()
    kinds = pc.cast(feed.column("_change_type"), pa.string())  # delta-rs hands out string views
    ids = pc.cast(feed.column("customer_id"), pa.string()).filter(
        pc.not_equal(kinds, "update_preimage")
    )
    return pc.unique(pc.drop_null(ids)).to_pylist()  # type: ignore[no-any-return]


def _changed_ids_spark(
    spark: SparkSession, settings: Settings, *, since: int, until: int, limit: int | None
) -> list[str]:
    frame = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", since + 1)
        .option("endingVersion", until)
        .load(table_path(settings, PREDICTIONS_CURRENT))
        .where(F.col("_change_type") != "update_preimage")
        .select("customer_id")
        .distinct()
    )
    if limit is not None:
        frame = frame.limit(limit + 1)
    try:
        return [row[0] for row in frame.collect()]
    except (PySparkException, Py4JError) as exc:
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise ChangesUnavailable(
            f"change data feed of {PREDICTIONS_CURRENT.name} unreadable from version "
            f"{since + 1} to {until}: {first_line}"
        ) from exc


def snapshot(spark: SparkSession, settings: Settings, *, version: int) -> pa.Table:
    """Every row of ``predictions.current`` at ``version`` (``SYNC_COLUMNS``), sorted."""
    try:
        from deltalake import DeltaTable

        rust = DeltaTable(table_path(settings, PREDICTIONS_CURRENT), version=version)
        dataset = rust.to_pyarrow_dataset()
        # A version written before the table had reasons reads without them.
        raw = dataset.to_table(columns=[c for c in SYNC_COLUMNS if c in dataset.schema.names])
    except Exception as exc:  # unsupported reader feature, storage delta-rs cannot reach, ...
        log.info("delta-rs cannot read the snapshot (%s); reading with Spark", exc)
        return to_arrow(sync_rows(current_at(spark, settings, version)))
    return sort_rows(
        pa.table(
            {
                "customer_id": raw.column("customer_id"),
                "model_name": raw.column("model_name"),
                "model_version": pc.cast(raw.column("model_version"), pa.string()),
                "score": pc.cast(raw.column("score"), pa.float64()),
                "score_date": pc.cast(raw.column("score_date"), pa.string()),
                "scored_at": raw.column("scored_at"),
                "reasons": (
                    raw.column("reasons")
                    if "reasons" in raw.column_names
                    else pa.nulls(raw.num_rows)
                ),
                **{
                    name: (
                        raw.column(name)
                        if name in raw.column_names
                        else pa.nulls(raw.num_rows, type=kind)
                    )
                    for name, kind in SHADOW_TYPES.items()
                },
            }
        )
    )


def rows_of(table: pa.Table, ids: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column("customer_id"), value_set=pa.array(ids, pa.string())))


def distinct_customers(table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    return int(pc.count_distinct(table.column("customer_id")).as_py())


def priors(table: pa.Table) -> list[dict[str, Any]]:
    """Per model: the mean score (the fallback answer) and the most common model version."""
    if table.num_rows == 0:
        return []
    means = table.group_by("model_name").aggregate([("score", "mean")]).to_pylist()
    versions = (
        table.group_by(["model_name", "model_version"])
        .aggregate([("customer_id", "count")])
        .sort_by([("customer_id_count", "descending"), ("model_version", "ascending")])
        .to_pylist()
    )
    common: dict[str, str] = {}
    for row in versions:
        common.setdefault(row["model_name"], str(row["model_version"]))
    return [
        {
            "_id": m["model_name"],
            "prior": float(m["score_mean"]),
            "model_version": common[m["model_name"]],
        }
        for m in means
    ]
