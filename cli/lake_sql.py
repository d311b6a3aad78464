"""Analysts' SQL without Spark: DuckDB over the lake's Delta tables, read through delta-rs
(Spark-free: this module imports neither pyspark nor the jobs, whose platform face opens
Spark; that is why it lives in ``cli/`` and not in ``jobs/platform/``).

Every table of ``schemas.tables`` that exists is a view under its Spark SQL name
(``predictions.history``, ``monitoring.score_runs``, ...) over the table's pyarrow
dataset (delta-rs resolves the log, and each file's fragment carries its partition values
and min/max statistics, so DuckDB's filters, pushed into the scan, skip files: one
customer's history opens few of them). Nothing is downloaded at run time: no DuckDB
extension is used, and DuckDB's own file access is off (the query reads the lake only).
Time travel (a version, or the version current at a timestamp) applies to every lake
table the query names.

``run_sql(settings, query=...)`` returns a ``pyarrow.Table``; ``lake_tables(settings)``
lists the tables with their path, version and whether they exist (``lakescore sql``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.settings import Settings
from schemas.tables import ALL_TABLES

if TYPE_CHECKING:
    import pyarrow as pa

NAMES: tuple[str, ...] = tuple(sorted(spec.name for spec in ALL_TABLES))


class SqlInputError(ValueError):
    """A query, a table or a version the lake cannot answer (the message says which)."""


@dataclass(frozen=True, kw_only=True)
class LakeTable:
    name: str
    path: str
    exists: bool
    version: int | None


def delta_path(settings: Settings, name: str) -> str:
    """Where delta-rs reads ``name`` (Spark's ``s3a://`` is delta-rs's ``s3://``)."""
    return settings.table_path(name).replace("s3a://", "s3://", 1)


def _load(path: str) -> Any:
    """The table's latest snapshot, or None when there is no Delta table at ``path``."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path)
    except TableNotFoundError:
        return None


def lake_tables(settings: Settings) -> list[LakeTable]:
    """Every table lakescore writes, with its path and latest version (None: not yet)."""
    found = []
    for name in NAMES:
        path = delta_path(settings, name)
        table = _load(path)
        version = None if table is None else int(table.version())
        found.append(LakeTable(name=name, path=path, exists=table is not None, version=version))
    return found


def named_tables(query: str) -> list[str]:
    """The lake tables ``query`` names (``schema.table``, any case, quoted or not)."""
    found = []
    for name in NAMES:
        schema, table = name.split(".")
        pattern = rf'(?<![\w.])"?{schema}"?\s*\.\s*"?{table}"?(?!\w)'
        if re.search(pattern, query, flags=re.IGNORECASE):
            found.append(name)
    return found


def _versions(table: Any) -> tuple[int, int]:
    """The oldest version still in ``table``'s log and its latest."""
    versions = [int(h["version"]) for h in table.history()]
    latest = int(table.version())
    return (min(versions) if versions else latest), latest


def _commit_time(path: str, version: int) -> dt.datetime | None:
    """When ``version`` was committed (None: its commit says no time). Read from the
    latest snapshot: delta-rs 1.6 numbers a time-travelled table's history from the
    version it loaded, not from the commits it lists."""
    from deltalake import DeltaTable

    latest = DeltaTable(path)
    for commit in latest.history(int(latest.version()) - version + 1):
        if int(commit["version"]) == version and commit.get("timestamp") is not None:
            return dt.datetime.fromtimestamp(int(commit["timestamp"]) / 1000, tz=dt.UTC)
    return None


def _travel(
    name: str, path: str, *, as_of_version: int | None, as_of_timestamp: dt.datetime | None
) -> Any:
    """``name`` as of a version or a time, or ``SqlInputError`` naming its versions."""
    table = _load(path)
    if table is None:
        raise SqlInputError(f"{name} does not exist yet (no Delta table at {path})")
    if as_of_version is not None:
        first, latest = _versions(table)
        if not first <= as_of_version <= latest:
            why = "newer than its latest" if as_of_version > latest else "cleaned from its log"
            raise SqlInputError(
                f"{name} has versions {first}..{latest}: version {as_of_version} is {why}"
            )
        try:
            table.load_as_version(as_of_version)
        except Exception as exc:  # delta-rs: a log file cleaned since, a missing checkpoint
            raise SqlInputError(
                f"{name} cannot be read at version {as_of_version} "
                f"(versions {first}..{latest}): {exc}"
            ) from exc
        return table
    assert as_of_timestamp is not None
    try:
        table.load_as_version(as_of_timestamp)
    except Exception as exc:
        first, latest = _versions(_load(path))
        raise SqlInputError(
            f"{name} cannot be read as of {as_of_timestamp.isoformat()} "
            f"(versions {first}..{latest}): {exc}"
        ) from exc
    # delta-rs answers a time before the oldest readable version with that version; the
    # table did not exist then (or its log no longer says what it held).
    version = int(table.version())
    committed = _commit_time(path, version)
    if committed is not None and committed > as_of_timestamp:
        raise SqlInputError(
            f"{name} has no version as of {as_of_timestamp.isoformat()}: its oldest "
            f"readable version {version} was committed at {committed.isoformat()}"
        )
    return table


def run_sql(
    settings: Settings,
    *,
    query: str,
    as_of_version: int | None = None,
    as_of_timestamp: dt.datetime | None = None,
) -> pa.Table:
    """Run ``query`` on DuckDB over the lake; ``SqlInputError`` for a bad query or version.

    Only the lake tables the query names are opened (every existing one when it names
    none, e.g. ``SHOW ALL TABLES``); time travel applies to each table it names. A naive
    ``as_of_timestamp`` is UTC.
    """
    try:
        import duckdb
    except ImportError as exc:
        raise SqlInputError("DuckDB is not installed: pip install 'lakescore[analysts]'") from exc

    if as_of_version is not None and as_of_timestamp is not None:
        raise SqlInputError("give a version or a timestamp to travel to, not both")
    if as_of_timestamp is not None and as_of_timestamp.tzinfo is None:
        as_of_timestamp = as_of_timestamp.replace(tzinfo=dt.UTC)
    named = named_tables(query)
    travel = as_of_version is not None or as_of_timestamp is not None
    opened: dict[str, Any] = {}
    for name in named or NAMES:
        path = delta_path(settings, name)
        if named and travel:
            opened[name] = _travel(
                name, path, as_of_version=as_of_version, as_of_timestamp=as_of_timestamp
            )
            continue
        table = _load(path)
        if table is not None:
            opened[name] = table
        elif named:
            raise SqlInputError(
                f"{name} does not exist yet (no Delta table at {path}); "
                f"lake tables: {_existing(settings)}"
            )
    con = duckdb.connect()
    try:
        con.execute("SET enable_external_access = false")  # the lake only, via delta-rs
        for schema in sorted({name.split(".")[0] for name in NAMES}):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name, table in opened.items():
            alias = "__lake_" + name.replace(".", "_")
            con.register(alias, table.to_pyarrow_dataset())
            schema, short = name.split(".")
            con.execute(f'CREATE VIEW "{schema}"."{short}" AS SELECT * FROM {alias}')
        try:
            result = con.execute(query).arrow()
        except duckdb.Error as exc:
            raise SqlInputError(f"{exc} (lake tables: {_existing(settings)})") from exc
        return result.read_all() if hasattr(result, "read_all") else result
    finally:
        con.close()


def _existing(settings: Settings) -> str:
    return ", ".join(t.name for t in lake_tables(settings) if t.exists) or "none yet"
