"""``lakescore sql "SELECT ..."``: analysts' SQL on DuckDB over the lake, no Spark
(``cli.lake_sql``). The ``analysts`` extra installs DuckDB and polars."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from cli.errors import EXIT_USAGE, fail, load_settings, out

Format = Literal["table", "csv", "json"]


def sql(
    query: Annotated[
        str | None, typer.Argument(help='The query, e.g. "SELECT * FROM predictions.current".')
    ] = None,
    tables: Annotated[
        bool, typer.Option("--tables", help="List the lake's tables, paths and versions.")
    ] = False,
    as_of_version: Annotated[
        int | None,
        typer.Option(min=0, help="Read every table the query names at this Delta version."),
    ] = None,
    as_of_timestamp: Annotated[
        dt.datetime | None,
        typer.Option(help="Read every table the query names as of this time (ISO, UTC)."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, csv or json (on standard output).")
    ] = "table",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the result to a .csv or .parquet file.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows shown by --format table.")] = 50,
) -> None:
    """Query the lake's Delta tables with SQL (DuckDB through delta-rs; no Spark)."""
    from cli.lake_sql import SqlInputError, lake_tables, run_sql

    settings = load_settings()
    if tables:
        listing = Table(title="lake tables")
        for column in ("table", "version", "path"):
            listing.add_column(column)
        for t in lake_tables(settings):
            listing.add_row(t.name, "-" if t.version is None else str(t.version), t.path)
        out.print(listing)
        return
    if not query:
        raise fail("give a query (or --tables)", code=EXIT_USAGE)
    if output_format not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {output_format!r}", code=EXIT_USAGE)
    if out_file is not None and out_file.suffix not in (".csv", ".parquet"):
        raise fail(f"--out must end in .csv or .parquet: {out_file}", code=EXIT_USAGE)
    when = as_of_timestamp
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        result = run_sql(settings, query=query, as_of_version=as_of_version, as_of_timestamp=when)
    except SqlInputError as exc:
        raise fail(str(exc), code=EXIT_USAGE) from exc
    if out_file is not None:
        write_result(result, out_file)
        out.print(f"{result.num_rows} rows written to {out_file}")
        return
    show(result, output_format=output_format, limit=limit)  # type: ignore[arg-type]


def write_result(result: Any, path: Path) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(result, path)
    else:
        pcsv.write_csv(result, path)


def show(result: Any, *, output_format: Format, limit: int) -> None:
    if output_format == "csv":
        import io

        import pyarrow.csv as pcsv

        buffer = io.BytesIO()
        pcsv.write_csv(result, buffer)
        out.out(buffer.getvalue().decode(), end="", highlight=False)
        return
    rows = result.to_pylist()
    if output_format == "json":
        out.out(json.dumps(rows, default=str, indent=2), highlight=False)
        return
    table = Table(
        caption=f"{min(limit, len(rows))} of {len(rows)} rows" if len(rows) > limit else None
    )
    for column in result.column_names:
        table.add_column(column)
    for row in rows[:limit]:
        table.add_row(*["-" if v is None else str(v) for v in row.values()])
    out.print(table)
