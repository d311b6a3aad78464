"""Point-in-time customer features: for as-of date D, only orders strictly before D."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lake import ensure_table, read_table, table_path, table_version
from schemas.features import FEATURES, WINDOWS_DAYS
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, SILVER_ORDERS


@dataclass(frozen=True, kw_only=True)
class FeatureBuildResult:
    as_of_date: dt.date
    customers: int
    table_version: int
    silver_version: int


def compute_customer_features(orders: DataFrame, *, as_of: dt.date) -> DataFrame:
    """One row per customer with at least one order before ``as_of``; pure, no I/O."""
    as_of_col = F.lit(as_of).cast("date")
    past = orders.where(F.col("order_date") < as_of_col).withColumn(
        "age_days", F.datediff(as_of_col, F.col("order_date"))
    )
    aggs = [
        F.min("age_days").cast("int").alias("recency_days"),
        F.max("age_days").cast("int").alias("tenure_days"),
        F.count(F.lit(1)).cast("int").alias("frequency_all"),
        F.sum("amount").cast("double").alias("monetary_all"),
        F.avg("amount").cast("double").alias("avg_basket_amount"),
        F.avg("quantity").cast("double").alias("avg_basket_quantity"),
    ]
    for w in WINDOWS_DAYS:
        in_window = F.col("age_days") <= w
        aggs.append(F.count(F.when(in_window, 1)).cast("int").alias(f"frequency_{w}d"))
        aggs.append(
            F.coalesce(F.sum(F.when(in_window, F.col("amount"))), F.lit(0.0))
            .cast("double")
            .alias(f"monetary_{w}d")
        )
    features = past.groupBy("customer_id").agg(*aggs).withColumn("as_of_date", as_of_col)
    return features.select("customer_id", "as_of_date", *[f.name for f in FEATURES])


def build_customer_features(
    spark: SparkSession, settings: Settings, *, as_of: dt.date
) -> FeatureBuildResult:
    """Compute and write the ``as_of_date = as_of`` partition (replacing only that partition)."""
    silver_version = table_version(spark, settings, SILVER_ORDERS)
    orders = read_table(spark, settings, SILVER_ORDERS, version=silver_version)
    features = compute_customer_features(orders, as_of=as_of).repartition(1)
    ensure_table(spark, settings, CUSTOMER_FEATURES)
    (
        features.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"as_of_date = DATE'{as_of.isoformat()}'")
        .save(table_path(settings, CUSTOMER_FEATURES))
    )
    version = table_version(spark, settings, CUSTOMER_FEATURES)
    written = read_table(spark, settings, CUSTOMER_FEATURES, version=version).where(
        F.col("as_of_date") == F.lit(as_of)
    )
    return FeatureBuildResult(
        as_of_date=as_of,
        customers=written.count(),
        table_version=version,
        silver_version=silver_version,
    )
