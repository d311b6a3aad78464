"""Analysts' SQL without Spark: DuckDB over the lake's Delta tables, read through delta-rs
(Spark-free: this module imports neither pyspark nor the jobs).

Every table of ``schemas.tables`` that exists is a view under its Spark SQL name
(``predictions.history``, ``monitoring.score_runs``, ...) over the table's pyarrow
dataset (delta-rs resolves the log; DuckDB pushes filters and projections into the
Parquet scan, so one customer's history reads few files). Nothing is downloaded at run
time: no DuckDB extension is used. Time travel (a version, or the version current at a
timestamp) applies to every lake table the query names.

``run_sql(settings, query=...)`` returns a ``pyarrow.Table``; ``lake_tables(settings)``
lists the tables with their path, version and whether they exist (``lakescore sql``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.settings import Settings
from schemas.tables import ALL_TABLES, TableSpec

if TYPE_CHECKING:
    import pyarrow as pa


class SqlInputError(ValueError):
    """A query, a table or a version the lake cannot answer (the message says which)."""


@dataclass(frozen=True, kw_only=True)
class LakeTable:
    name: str
    path: str
    exists: bool
    version: int | None


def _specs() -> dict[str, TableSpec]:
    return {spec.name: spec for spec in ALL_TABLES}


def lake_tables(settings: Settings) -> list[LakeTable]:
    """Every table lakescore writes, with its path and latest version (None: not yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    out = []
    for name in sorted(_specs()):
        path = settings.table_path(name)
        try:
            version: int | None = int(DeltaTable(path).version())
        except TableNotFoundError:
            version = None
        out.append(LakeTable(name=name, path=path, exists=version is not None, version=version))
    return out


def named_tables(query: str) -> list[str]:
    """The lake tables ``query`` names (``schema.table``, any case, quoted or not)."""
    found = []
    for name in _specs():
        schema, table = name.split(".")
        pattern = rf'(?<![\w.])"?{schema}"?\s*\.\s*"?{table}"?(?!\w)'
        if re.search(pattern, query, flags=re.IGNORECASE):
            found.append(name)
    return sorted(found)


def _open(
    name: str, path: str, *, as_of_version: int | None, as_of_timestamp: dt.datetime | None
) -> Any:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(path)
    except TableNotFoundError as exc:
        raise SqlInputError(f"{name} does not exist yet (no Delta table at {path})") from exc
    if as_of_version is None and as_of_timestamp is None:
        return table
    latest = int(table.version())
    versions = sorted(int(h["version"]) for h in table.history())
    first = versions[0] if versions else latest
    try:
        if as_of_version is not None:
            if not first <= as_of_version <= latest:
                why = "newer than its latest" if as_of_version > latest else "cleaned from its log"
                raise SqlInputError(
                    f"{name} has versions {first}..{latest}: version {as_of_version} is {why}"
                )
            table.load_as_version(as_of_version)
        else:
            assert as_of_timestamp is not None
            table.load_as_version(as_of_timestamp)
    except SqlInputError:
        raise
    except Exception as exc:  # delta-rs: no version at that time, or a log cleaned since
        when = as_of_version if as_of_version is not None else as_of_timestamp
        raise SqlInputError(
            f"{name} cannot be read as of {when} (versions {first}..{latest}): {exc}"
        ) from exc
    return table


def run_sql(
    settings: Settings,
    *,
    query: str,
    as_of_version: int | None = None,
    as_of_timestamp: dt.datetime | None = None,
) -> pa.Table:
    """Run ``query`` on DuckDB over the lake; ``SqlInputError`` for a bad query or version."""
    try:
        import duckdb
    except ImportError as exc:
        raise SqlInputError("DuckDB is not installed: pip install 'lakescore[analysts]'") from exc

    if as_of_version is not None and as_of_timestamp is not None:
        raise SqlInputError("give a version or a timestamp to travel to, not both")
    named = named_tables(query)
    existing = {t.name: t for t in lake_tables(settings)}
    con = duckdb.connect()
    try:
        con.execute("SET enable_external_access = false")  # the lake only, via delta-rs
        for schema in sorted({name.split(".")[0] for name in existing}):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name, info in existing.items():
            travel = name in named
            if not info.exists:
                if travel:
                    raise SqlInputError(
                        f"{name} does not exist yet (no Delta table at {info.path})"
                    )
                continue
            if not travel and named:
                continue  # only what the query names is opened
            table = _open(
                name,
                info.path,
                as_of_version=as_of_version if travel else None,
                as_of_timestamp=as_of_timestamp if travel else None,
            )
            alias = "__lake_" + name.replace(".", "_")
            con.register(alias, table.to_pyarrow_dataset())
            schema, short = name.split(".")
            con.execute(f'CREATE VIEW "{schema}"."{short}" AS SELECT * FROM {alias}')
        try:
            result = con.execute(query).arrow()
        except duckdb.Error as exc:
            there = ", ".join(n for n, t in existing.items() if t.exists) or "none yet"
            raise SqlInputError(f"{exc} (lake tables: {there})") from exc
        return result.read_all() if hasattr(result, "read_all") else result
    finally:
        con.close()
