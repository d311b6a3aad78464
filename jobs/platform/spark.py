"""One way to open a Delta-enabled Spark session, local or on a cluster.

The Delta jars are resolved by Spark's own package resolver (Ivy) from Maven
Central on first use and reused offline afterwards; ``python -m jobs.platform.spark``
does that once during setup.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from schemas.settings import Settings, get_settings

_DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Idempotent history rewrites use replaceWhere; keep its safety check on.
    "spark.databricks.delta.replaceWhere.constraintCheck.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # Reconstructing a snapshot (every overwrite, replaceWhere and read of a new version)
    # shuffles the log's actions into this many partitions: Delta's 50 cost seconds, 4 still
    # cost about 0.35 s more than 1 per overwrite on this project's tables (thousands of
    # files at most). A table with millions of files wants more: ``spark.extra_conf``.
    "spark.databricks.delta.snapshotPartitions": "1",
}


def get_spark(settings: Settings | None = None) -> SparkSession:
    """Return the active session, or build one from ``settings`` (Delta configured)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from delta import configure_spark_with_delta_pip

    settings = settings or get_settings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(settings.spark.master)
        .appName(settings.spark.app_name)
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        .config("spark.driver.memory", settings.spark.driver_memory)
        .config("spark.ui.enabled", str(settings.spark.ui_enabled).lower())
        .config("spark.sql.warehouse.dir", f"{settings.data_dir}/spark-warehouse")
    )
    for key, value in {**_DELTA_CONF, **settings.spark.extra_conf}.items():
        builder = builder.config(key, value)
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def session_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set SQL confs for the block, then restore them (Hadoop keys such as
    ``parquet.block.size`` reach file writers this way; Delta ignores them as write options)."""
    previous: dict[str, str | None] = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def main() -> None:
    """Resolve the Delta jars (setup step) by opening one Delta session and writing a table."""
    import tempfile

    spark = get_spark()
    with tempfile.TemporaryDirectory() as tmp:
        spark.range(3).write.format("delta").save(f"{tmp}/warmup")
        n = spark.read.format("delta").load(f"{tmp}/warmup").count()
    print(f"Delta Lake ready (Spark {spark.version}, wrote and read {n} rows)")
    spark.stop()


if __name__ == "__main__":
    main()
