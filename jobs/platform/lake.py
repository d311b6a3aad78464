"""Small helpers over Delta tables addressed by their logical name (``schema.table``)."""

from __future__ import annotations

import logging
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from schemas.settings import Settings
from schemas.tables import TableSpec

log = logging.getLogger(__name__)


def table_path(settings: Settings, spec: TableSpec) -> str:
    return settings.table_path(spec.name)


def table_exists(spark: SparkSession, settings: Settings, spec: TableSpec) -> bool:
    return DeltaTable.isDeltaTable(spark, table_path(settings, spec))


def read_table(
    spark: SparkSession, settings: Settings, spec: TableSpec, *, version: int | None = None
) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table_path(settings, spec))


def table_version(spark: SparkSession, settings: Settings, spec: TableSpec) -> int:
    """The latest committed version of a table."""
    history = DeltaTable.forPath(spark, table_path(settings, spec)).history(1)
    return int(history.select("version").first()[0])  # type: ignore[index]


def log_version(settings: Settings, spec: TableSpec) -> int | None:
    """The table's latest version read from its Delta log by delta-rs, without Spark; None
    when the table does not exist."""
    from deltalake import DeltaTable as RustDeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return int(RustDeltaTable(table_path(settings, spec)).version())
    except TableNotFoundError:
        return None


def file_statistics(settings: Settings, spec: TableSpec) -> list[dict[str, Any]] | None:
    """One dict per data file of the latest version: ``path``, ``num_records``,
    ``partition.<column>``, ``min.<column>`` / ``max.<column>``, read from the Delta log by
    delta-rs (no data file is opened). None when delta-rs cannot read the table (a storage
    or a reader feature it lacks): ask Spark instead."""
    try:
        import pyarrow as pa
        from deltalake import DeltaTable as RustDeltaTable

        actions = RustDeltaTable(table_path(settings, spec)).get_add_actions(flatten=True)
        return pa.table(actions).to_pylist()
    except Exception as exc:  # any reason delta-rs cannot read it: Spark can
        log.info("delta-rs cannot read the file statistics of %s (%s)", spec.name, exc)
        return None


def last_commit(
    spark: SparkSession, settings: Settings, spec: TableSpec
) -> tuple[int, dict[str, str]]:
    """The latest version of a table and its commit's operation metrics (``numOutputRows``...)."""
    history = DeltaTable.forPath(spark, table_path(settings, spec)).history(1)
    row = history.select("version", "operationMetrics").first()
    if row is None:
        raise ValueError(f"{spec.name} has no commit")
    return int(row[0]), dict(row[1] or {})


def ensure_table(
    spark: SparkSession,
    settings: Settings,
    spec: TableSpec,
    *,
    properties: dict[str, str] | None = None,
) -> DeltaTable:
    """Create the table (empty, with its schema) when it does not exist yet.

    The spec's properties (``TableSpec.properties``), and ``properties`` on top: set on
    creation, and on an existing table that lacks them or has other values (one metadata
    commit, the first time only), so that a changed spec reaches tables created before it.
    """
    properties = {**spec.properties, **(properties or {})}
    path = table_path(settings, spec)
    schema = spark.createDataFrame([], spec.ddl).schema
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    for key, value in properties.items():
        builder = builder.property(key, value)
    table = builder.execute()
    _add_missing_columns(spark, spec, path=path, table=table, schema=schema)
    if properties:
        rows = spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
        have = {row["key"]: row["value"] for row in rows}
        changed = {key: value for key, value in properties.items() if have.get(key) != value}
        if changed:
            log.info("%s: setting table properties %s", spec.name, changed)
            assignments = ", ".join(f"'{key}' = '{value}'" for key, value in changed.items())
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
    return table


def _add_missing_columns(
    spark: SparkSession, spec: TableSpec, *, path: str, table: DeltaTable, schema: StructType
) -> None:
    """Columns the spec gained since the table was created, added (nullable, null in the
    rows already written; one metadata commit, the first time only)."""
    have = {field.name for field in table.toDF().schema.fields}
    missing = [field for field in schema.fields if field.name not in have]
    if not missing:
        return
    log.info("%s: adding columns %s", spec.name, [field.name for field in missing])
    columns = ", ".join(f"`{field.name}` {field.dataType.simpleString()}" for field in missing)
    spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


def register_tables(spark: SparkSession, settings: Settings, specs: tuple[TableSpec, ...]) -> None:
    """Register existing tables in the session catalog so ``SELECT ... FROM predictions.history`` works."""
    for spec in specs:
        if not table_exists(spark, settings, spec):
            continue
        schema, _, name = spec.name.partition(".")
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {schema}.{name} USING DELTA "
            f"LOCATION '{table_path(settings, spec)}'"
        )
