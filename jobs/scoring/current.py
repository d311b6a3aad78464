"""``predictions.current``: one row per customer and model, updated from a night's history rows.

Partitioned by ``model_name``: each model's night rewrites only its own files, so
models scored the same night never touch each other's rows.
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.platform import CHAMPION, file_statistics, read_table, table_path
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY

log = logging.getLogger(__name__)


def update_current(
    spark: SparkSession,
    settings: Settings,
    rows: DataFrame,
    *,
    score_date: dt.date,
    model_name: str,
    history_version: int | None = None,
) -> str:
    """Put ``rows`` (one per customer, all dated ``score_date``) into current; returns the mode.

    ``history_version``: ``rows`` are the model's champion rows of ``score_date`` in
    ``predictions.history`` at that version, so their ids can be read from the Delta log's
    files without Spark (``customers_not_scored``).

    - insert: current has no row of the model yet, a plain append;
    - replace: every row of the model is dated ``score_date`` or earlier (a normal
      night): the model's rows are rewritten as the new rows plus the customers
      not scored today, in one overwrite (no change-data files to write);
    - merge: some rows are newer (a backfill of a past date): only rows whose
      score date is not newer are updated.
    """
    path = table_path(settings, PREDICTIONS_CURRENT)
    of_model = read_table(spark, settings, PREDICTIONS_CURRENT).where(
        F.col("model_name") == model_name
    )
    newest = newest_score_date(spark, settings, model_name=model_name)
    if newest is None:
        rows.write.format("delta").mode("append").save(path)
        return "insert"
    if newest <= score_date:
        # Ids only first: on a normal night every customer of current is scored again
        # and nothing has to be kept, so the full rows never go through a join.
        replacement = rows
        kept = _not_scored(
            spark,
            settings,
            rows,
            of_model,
            score_date=score_date,
            model_name=model_name,
            history_version=history_version,
        )
        if kept is not None:
            replacement = rows.unionByName(kept)
        (
            replacement.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"model_name = '{model_name}'")
            .save(path)
        )
        return "replace"
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), "t.customer_id = s.customer_id AND t.model_name = s.model_name")
        .whenMatchedUpdateAll(condition="s.score_date >= t.score_date")
        .whenNotMatchedInsertAll()
        .execute()
    )
    return "merge"


def newest_score_date(
    spark: SparkSession, settings: Settings, *, model_name: str
) -> dt.date | None:
    """The newest score date among the model's rows of current (None: it has none).

    From the Delta log's per-file statistics where delta-rs can read them (no data file
    opened; a file's max can only overstate its live rows' max, which picks the always
    correct merge), else from a Spark scan.
    """
    files = file_statistics(settings, PREDICTIONS_CURRENT)
    if files is not None:
        mine = [f for f in files if f.get("partition.model_name") == model_name]
        if all(f.get("num_records") is not None for f in mine):
            maxima = [f.get("max.score_date") for f in mine if f["num_records"] > 0]
            dates = [day for day in maxima if isinstance(day, dt.date)]
            if len(dates) == len(maxima):
                return max(dates, default=None)
    of_model = read_table(spark, settings, PREDICTIONS_CURRENT).where(
        F.col("model_name") == model_name
    )
    return of_model.agg(F.max("score_date")).first()[0]  # type: ignore[index,no-any-return]


def _not_scored(
    spark: SparkSession,
    settings: Settings,
    rows: DataFrame,
    of_model: DataFrame,
    *,
    score_date: dt.date,
    model_name: str,
    history_version: int | None,
) -> DataFrame | None:
    """The model's current rows whose customer is not in ``rows`` (None: there are none)."""
    ids = None
    if history_version is not None:
        ids = customers_not_scored(
            settings, score_date=score_date, model_name=model_name, history_version=history_version
        )
    if ids is not None:
        if not ids:
            return None
        gone = spark.createDataFrame([(c,) for c in ids], "customer_id STRING")
    else:
        gone = of_model.select("customer_id").join(
            rows.select("customer_id"), "customer_id", "left_anti"
        )
        if gone.isEmpty():
            return None
    return of_model.join(gone, "customer_id", "left_semi")


def customers_not_scored(
    settings: Settings, *, score_date: dt.date, model_name: str, history_version: int
) -> list[str] | None:
    """Customers of the model in current without a champion row of ``score_date`` in history
    (at ``history_version``), compared in Arrow from two column reads by delta-rs (no Spark
    job: about 20 MB of ids per million customers in the driver, as the sync's snapshot).
    None when delta-rs cannot read either table: ask Spark."""
    try:
        import pyarrow.dataset as ds
        from deltalake import DeltaTable as RustDeltaTable

        current = RustDeltaTable(table_path(settings, PREDICTIONS_CURRENT)).to_pyarrow_dataset()
        history = RustDeltaTable(
            table_path(settings, PREDICTIONS_HISTORY), version=history_version
        ).to_pyarrow_dataset()
        known = current.to_table(
            columns=["customer_id"], filter=ds.field("model_name") == model_name
        ).column("customer_id")
        scored = history.to_table(
            columns=["customer_id"],
            filter=(ds.field("score_date") == pa.scalar(score_date, pa.date32()))
            & (ds.field("model_name") == model_name)
            & (ds.field("model_role") == CHAMPION),
        ).column("customer_id")
        known, scored = pc.cast(known, pa.string()), pc.cast(scored, pa.string())
    except Exception as exc:  # any reason delta-rs cannot read them: Spark can
        log.info("delta-rs cannot compare the scored customers (%s); joining in Spark", exc)
        return None
    tonight = pc.is_in(known, value_set=scored)
    return pc.filter(known, pc.invert(tonight)).to_pylist()  # type: ignore[no-any-return]
