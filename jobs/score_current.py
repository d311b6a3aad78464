"""``predictions.current``: one row per customer and model, updated from a night's history rows.

Partitioned by ``model_name``: each model's night rewrites only its own files, so
models scored the same night never touch each other's rows.
"""

from __future__ import annotations

import datetime as dt

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lake import read_table, table_path
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT


def update_current(
    spark: SparkSession,
    settings: Settings,
    rows: DataFrame,
    *,
    score_date: dt.date,
    model_name: str,
) -> str:
    """Put ``rows`` (one per customer, all dated ``score_date``) into current; returns the mode.

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
    newest = of_model.agg(F.max("score_date")).first()[0]  # type: ignore[index]
    if newest is None:
        rows.write.format("delta").mode("append").save(path)
        return "insert"
    if newest <= score_date:
        # Ids only first: on a normal night every customer of current is scored again
        # and nothing has to be kept, so the full rows never go through a join.
        gone = of_model.select("customer_id").join(
            rows.select("customer_id"), "customer_id", "left_anti"
        )
        replacement = rows
        if not gone.isEmpty():
            replacement = rows.unionByName(of_model.join(gone, "customer_id", "left_semi"))
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
