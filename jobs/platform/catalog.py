"""Register the lake's tables in the session's Spark SQL catalog, for analysts' plain SQL.

``open_catalog_session()`` (or ``python -m jobs.platform.catalog``) returns a Delta-enabled
session in which ``SELECT ... FROM predictions.history`` works. Tables are
registered by location, so the catalog never owns (or deletes) data; a table that
does not exist yet is skipped and registered on a later call.
"""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from jobs.platform.lake import register_tables, table_exists, table_path
from schemas.settings import Settings, get_settings
from schemas.tables import ALL_TABLES, TableSpec


def register_catalog(
    spark: SparkSession, settings: Settings, *, specs: tuple[TableSpec, ...] = ALL_TABLES
) -> list[str]:
    """Register every existing table of ``specs``; returns the names now queryable.

    A name already registered at another location (another lake) is re-pointed at this
    settings' table; dropping such an entry never deletes data (the tables are external).
    """
    names = []
    for spec in specs:
        if not table_exists(spark, settings, spec):
            continue
        if spark.catalog.tableExists(spec.name):
            location = spark.sql(f"DESCRIBE DETAIL {spec.name}").first()["location"]  # type: ignore[index]
            if location.rstrip("/").removeprefix("file:") != table_path(settings, spec).rstrip("/"):
                spark.sql(f"DROP TABLE {spec.name}")
        names.append(spec.name)
    register_tables(spark, settings, specs)
    return names


def open_catalog_session(settings: Settings | None = None) -> SparkSession:
    """A project Spark session with every existing lake table registered."""
    from jobs.platform.spark import get_spark

    settings = settings or get_settings()
    spark = get_spark(settings)
    register_catalog(spark, settings)
    return spark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one SQL query over the registered tables.")
    parser.add_argument("sql", nargs="?", default="SHOW TABLES IN predictions")
    args = parser.parse_args(argv)
    open_catalog_session().sql(args.sql).show(50, truncate=False)


if __name__ == "__main__":
    main()
