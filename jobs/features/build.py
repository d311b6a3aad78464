"""Point-in-time customer features: for as-of date D, only orders strictly before D.

``compute_customer_features`` is the pure transform: one shuffle of the orders by
customer, one sort by (customer, order date), the order silver.orders keeps in its
files, for the gaps between order days (``jobs.features.order_gaps``), then one hash aggregation
per customer on that same partitioning;
``build_customer_features`` writes one ``as_of_date`` partition and
``build_feature_backfill`` writes many in one job and one Delta commit, reusing
one cached projection of silver and skipping partitions that already exist.
Each date's rows come out of their own aggregation, whose shuffle partitions adaptive
execution coalesces to about 64 MB: one file per date for CDNOW, a few for a million
customers, written in parallel, with no extra shuffle to gather a date (no tiny files,
whatever the date count).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.features.order_gaps import gap_aggregates, with_day_gaps, with_intervals
from jobs.platform import (
    ensure_table,
    last_commit,
    read_table,
    session_conf,
    table_exists,
    table_path,
    table_version,
)
from schemas.features import ALL_FEATURES, PROFILE_FEATURES, WINDOWS_DAYS
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, SILVER_CUSTOMERS, SILVER_ORDERS

# Parquet row groups of a feature file: one file per partition, but several row groups,
# so that scoring reads a large partition with as many tasks as there are cores (Spark
# splits a file by row group, never inside one).
ROW_GROUP_BYTES = 16 * 1024 * 1024
# Parquet dictionaries only for the text columns with few values (the profile's
# categories). Ids and measures have about one value per row: the writer would build a
# dictionary for every column chunk and then fall back to plain encoding (write time for
# nothing: about 1 s of an 11 s million-customer build in one measurement, a noisy one).
WRITE_CONF = {
    "parquet.block.size": str(ROW_GROUP_BYTES),
    "parquet.enable.dictionary": "false",
    **{
        f"parquet.enable.dictionary#{f.name}": "true"
        for f in ALL_FEATURES
        if f.dtype.upper() == "STRING"
    },
}


@dataclass(frozen=True, kw_only=True)
class FeatureBuildResult:
    as_of_date: dt.date
    customers: int
    table_version: int
    silver_version: int


@dataclass(frozen=True, kw_only=True)
class BackfillResult:
    built: list[dt.date] = field(default_factory=list)
    skipped: list[dt.date] = field(default_factory=list)
    table_version: int = -1
    silver_version: int = -1


def _ratio(num: Column, den: Column) -> Column:
    return ((num + F.lit(1.0)) / (den + F.lit(1.0))).cast("double")


def compute_customer_features(
    orders: DataFrame, *, as_of: dt.date, customers: DataFrame | None = None
) -> DataFrame:
    """One row per customer with at least one order before ``as_of``; pure, no I/O.

    ``customers`` (silver.customers) adds the profile attributes; without it they are null.
    """
    as_of_col = F.lit(as_of).cast("date")
    past = orders.where(F.col("order_date") < as_of_col).select(
        "customer_id",
        "amount",
        "quantity",
        F.datediff(as_of_col, F.col("order_date")).alias("age_days"),
    )
    aggs = [
        F.min("age_days").cast("int").alias("recency_days"),
        F.max("age_days").cast("int").alias("tenure_days"),
        F.count(F.lit(1)).cast("int").alias("frequency_all"),
        F.sum("amount").cast("double").alias("monetary_all"),
        F.avg("amount").cast("double").alias("avg_basket_amount"),
        F.avg("quantity").cast("double").alias("avg_basket_quantity"),
        *gap_aggregates(),
    ]
    for w in WINDOWS_DAYS:
        in_window = F.col("age_days") <= w
        aggs.append(F.count(F.when(in_window, 1)).cast("int").alias(f"frequency_{w}d"))
        aggs.append(
            F.coalesce(F.sum(F.when(in_window, F.col("amount"))), F.lit(0.0))
            .cast("double")
            .alias(f"monetary_{w}d")
        )
    features = (
        with_intervals(with_day_gaps(past).groupBy("customer_id").agg(*aggs))
        .withColumn("as_of_date", as_of_col)
        .withColumn("overdue_ratio", (F.col("recency_days") / F.col("ipi_mean_days")))
        .withColumn(
            "frequency_trend_30d_365d",
            _ratio(F.col("frequency_30d"), F.col("frequency_365d") * (30 / 365)),
        )
        .withColumn(
            "monetary_trend_90d_365d",
            _ratio(F.col("monetary_90d"), F.col("monetary_365d") * (90 / 365)),
        )
    )
    features = _with_profile(features, customers=customers, as_of=as_of_col)
    return features.select(
        "customer_id",
        "as_of_date",
        *[F.col(f.name).cast(f.dtype.lower()).alias(f.name) for f in ALL_FEATURES],
    )


def _with_profile(features: DataFrame, *, customers: DataFrame | None, as_of: Column) -> DataFrame:
    if customers is None:
        for f in PROFILE_FEATURES:
            features = features.withColumn(f.name, F.lit(None).cast(f.dtype.lower()))
        return features
    profile = customers.where(F.col("signup_date") < as_of).select(
        "customer_id",
        "country",
        "channel",
        "device",
        F.datediff(as_of, F.col("signup_date")).alias("signup_tenure_days"),
    )
    # Hash join on the customer partitioning the aggregation already has: only the profile
    # side is shuffled, and neither side is sorted (a sort-merge join would sort both).
    return features.join(profile.hint("shuffle_hash"), "customer_id", "left")


def _inputs(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame | None, int]:
    silver_version = table_version(spark, settings, SILVER_ORDERS)
    orders = read_table(spark, settings, SILVER_ORDERS, version=silver_version)
    customers = (
        read_table(spark, settings, SILVER_CUSTOMERS)
        if table_exists(spark, settings, SILVER_CUSTOMERS)
        else None
    )
    return orders, customers, silver_version


def _write_partitions(settings: Settings, features: DataFrame, dates: list[dt.date]) -> None:
    in_dates = ", ".join(f"DATE'{d.isoformat()}'" for d in dates)
    with session_conf(features.sparkSession, WRITE_CONF):
        (
            features.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"as_of_date IN ({in_dates})")
            .option("mergeSchema", "true")  # older tables gain the newer feature columns
            .save(table_path(settings, CUSTOMER_FEATURES))
        )


def build_customer_features(
    spark: SparkSession, settings: Settings, *, as_of: dt.date
) -> FeatureBuildResult:
    """Compute and write the ``as_of_date = as_of`` partition (replacing only that partition)."""
    orders, customers, silver_version = _inputs(spark, settings)
    features = compute_customer_features(orders, as_of=as_of, customers=customers)
    ensure_table(spark, settings, CUSTOMER_FEATURES)
    _write_partitions(settings, features, [as_of])
    version, metrics = last_commit(spark, settings, CUSTOMER_FEATURES)  # no re-read to count
    return FeatureBuildResult(
        as_of_date=as_of,
        customers=int(metrics.get("numOutputRows", 0)),
        table_version=version,
        silver_version=silver_version,
    )


def partition_rows(
    spark: SparkSession, settings: Settings, *, as_of: dt.date, version: int | None = None
) -> int:
    """Rows of one feature partition (at ``version``, or the latest)."""
    table = read_table(spark, settings, CUSTOMER_FEATURES, version=version)
    return table.where(F.col("as_of_date") == F.lit(as_of)).count()


def existing_partitions(spark: SparkSession, settings: Settings) -> set[dt.date]:
    if not table_exists(spark, settings, CUSTOMER_FEATURES):
        return set()
    rows = read_table(spark, settings, CUSTOMER_FEATURES).select("as_of_date").distinct().collect()
    return {r[0] for r in rows}


def build_feature_backfill(
    spark: SparkSession, settings: Settings, *, as_of_dates: list[dt.date], overwrite: bool = False
) -> BackfillResult:
    """Build many partitions in one job and one commit; existing ones are kept unless ``overwrite``."""
    existing = set() if overwrite else existing_partitions(spark, settings)
    todo = sorted(set(as_of_dates) - existing)
    skipped = sorted(set(as_of_dates) & existing)
    if not todo:
        return BackfillResult(skipped=skipped)
    orders, customers, silver_version = _inputs(spark, settings)
    # One projection of the orders any of the dates can see, read once and shared.
    cached = (
        orders.where(F.col("order_date") < F.lit(max(todo)))
        .select("customer_id", "order_date", "amount", "quantity")
        .cache()
    )
    try:
        parts = [compute_customer_features(cached, as_of=d, customers=customers) for d in todo]
        features = parts[0]
        for part in parts[1:]:
            features = features.unionByName(part)
        ensure_table(spark, settings, CUSTOMER_FEATURES)
        _write_partitions(settings, features, todo)
    finally:
        cached.unpersist()
    return BackfillResult(
        built=todo,
        skipped=skipped,
        table_version=table_version(spark, settings, CUSTOMER_FEATURES),
        silver_version=silver_version,
    )


def previous_partition_rows(
    spark: SparkSession, settings: Settings, *, as_of: dt.date
) -> tuple[dt.date, int] | None:
    """The latest feature partition before ``as_of`` and its row count (None: there is none)."""
    if not table_exists(spark, settings, CUSTOMER_FEATURES):
        return None
    table = read_table(spark, settings, CUSTOMER_FEATURES)
    row = table.where(F.col("as_of_date") < F.lit(as_of)).agg(F.max("as_of_date")).first()
    if row is None or row[0] is None:
        return None
    previous: dt.date = row[0]
    return previous, partition_rows(spark, settings, as_of=previous)
