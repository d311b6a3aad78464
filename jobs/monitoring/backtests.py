"""Realised quality of past nights: once a score date's label window [D, D+H) has closed,
the AUC and top-decile lift of each model version's predictions go to ``monitoring.backtests``.

Follows the primary model only, and only a binary one (realised AUC and lift are
binary metrics; a ``spend`` primary model has no backtests).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.platform import ensure_table, read_table, table_exists, table_path
from jobs.training import binary_metrics
from schemas.settings import Settings, primary_definition
from schemas.tables import BACKTESTS, PREDICTIONS_HISTORY, SILVER_ORDERS


def run_matured_backtests(
    spark: SparkSession, settings: Settings, *, as_of: dt.date
) -> list[dt.date]:
    """Backtest every scored date whose label window [D, D+H) closed before ``as_of``
    (orders strictly before ``as_of`` are in) and that has no backtest yet."""
    horizon = settings.model.horizon_days
    if primary_definition(settings).task != "binary":
        return []
    if not table_exists(spark, settings, PREDICTIONS_HISTORY):
        return []
    history = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        F.col("model_name") == settings.model.name
    )
    last = as_of - dt.timedelta(days=horizon)
    scored = {
        r[0]
        for r in history.where(F.col("score_date") <= F.lit(last))
        .select("score_date")
        .distinct()
        .collect()
    }
    if table_exists(spark, settings, BACKTESTS):
        done = read_table(spark, settings, BACKTESTS).where(
            F.col("model_name") == settings.model.name
        )
        scored -= {r[0] for r in done.select("score_date").distinct().collect()}
    if not scored:
        return []
    orders = read_table(spark, settings, SILVER_ORDERS)
    ensure_table(spark, settings, BACKTESTS)
    for day in sorted(scored):
        end = day + dt.timedelta(days=horizon)
        window = (F.col("order_date") >= F.lit(day)) & (F.col("order_date") < F.lit(end))
        positives = (
            orders.where(window).select("customer_id").distinct().withColumn("label", F.lit(1))
        )
        frame: Any = (
            history.where(F.col("score_date") == F.lit(day))
            .join(positives, "customer_id", "left")
            .fillna(0, subset=["label"])
            .select("model_role", "model_version", "score", "label")
            .toPandas()
        )
        rows = []
        for (role, version), part in frame.groupby(["model_role", "model_version"]):
            m = binary_metrics(part["label"].to_numpy(float), part["score"].to_numpy(float))
            rows.append(
                (
                    day,
                    settings.model.name,
                    version,
                    role,
                    horizon,
                    len(part),
                    int(part["label"].sum()),
                    m["base_rate"],
                    m["roc_auc"],
                    m["lift_top_decile"],
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                )
            )
        (
            spark.createDataFrame(rows, BACKTESTS.ddl)
            .write.format("delta")
            .mode("overwrite")
            .option(
                "replaceWhere",
                f"score_date = DATE'{day.isoformat()}' AND model_name = '{settings.model.name}'",
            )
            .save(table_path(settings, BACKTESTS))
        )
    return sorted(scored)
