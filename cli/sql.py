"""``lakescore sql "SELECT ..."``: analysts' SQL on DuckDB over the lake, no Spark
(``cli.lake_sql``). The ``analysts`` extra installs DuckDB and polars."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer
from rich.table import Table

from cli.errors import EXIT_USAGE, fail, load_settings, out

Format = Literal["table", "csv", "json"]


def sql(
    query: Annotated[
        str | None, typer.Argument(help='The query, e.g. "SELECT * FROM predictions.current".')
    ] = None,
    tables: Annotated[
        bool,
        typer.Option(
            "--tables",
            help="List the lake's tables: whether each exists, its version, its path "
            "(in the --format asked for).",
        ),
    ] = False,
    as_of_version: Annotated[
        int | None,
        typer.Option(min=0, help="Read every table the query names at this Delta version."),
    ] = None,
    as_of_timestamp: Annotated[
        str | None,
        typer.Option(
            help="Read every table the query names as it was at this time (ISO 8601, e.g. "
            "1998-02-02T00:00:00 or 1998-02-02T01:00:00+01:00; without an offset: UTC)."
        ),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, csv or json (on standard output).")
    ] = "table",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the result to a .csv or .parquet file.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows shown by --format table.")] = 50,
) -> None:
    """Query the lake's Delta tables with SQL (DuckDB through delta-rs; no Spark).

    Every lake table is there under its Spark SQL name (predictions.history,
    predictions.current, monitoring.score_runs, gold.customer_features, ...; --tables
    lists them). A bad query, a table that does not exist yet or a version a table does
    not have exits with code 2."""
    from cli.lake_sql import SqlInputError, lake_tables, run_sql

    settings = load_settings()
    if output_format not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {output_format!r}", code=EXIT_USAGE)
    shown_as = cast(Format, output_format)
    if tables:
        show_tables(lake_tables(settings), output_format=shown_as)
        return
    if not query:
        raise fail("give a query (or --tables)", code=EXIT_USAGE)
    if out_file is not None and out_file.suffix.lower() not in (".csv", ".parquet"):
        raise fail(f"--out must end in .csv or .parquet: {out_file}", code=EXIT_USAGE)
    when = None
    if as_of_timestamp is not None:
        try:
            when = dt.datetime.fromisoformat(as_of_timestamp)
        except ValueError as exc:
            raise fail(
                f"--as-of-timestamp must be an ISO 8601 time, not {as_of_timestamp!r}",
                code=EXIT_USAGE,
            ) from exc
    try:
        result = run_sql(settings, query=query, as_of_version=as_of_version, as_of_timestamp=when)
    except SqlInputError as exc:
        raise fail(str(exc), code=EXIT_USAGE) from exc
    if out_file is not None:
        write_result(result, out_file)
        out.out(f"{result.num_rows:,} rows written to {out_file}", highlight=False)
        return
    show(result, output_format=shown_as, limit=limit)


def show_tables(listed: list[Any], *, output_format: Format) -> None:
    """The lake's tables (``cli.lake_sql.LakeTable``) as a table, CSV or JSON."""
    if output_format != "table":
        import pyarrow as pa

        rows = [
            {"table": t.name, "exists": t.exists, "version": t.version, "path": t.path}
            for t in listed
        ]
        schema = pa.schema(
            [
                ("table", pa.string()),
                ("exists", pa.bool_()),
                ("version", pa.int64()),
                ("path", pa.string()),
            ]
        )
        show(
            pa.Table.from_pylist(rows, schema=schema), output_format=output_format, limit=len(rows)
        )
        return
    listing = Table(title="lake tables")
    for column in ("table", "exists", "version"):
        listing.add_column(column, no_wrap=True)
    listing.add_column("path", overflow="fold")
    for t in listed:
        version = "-" if t.version is None else str(t.version)
        listing.add_row(t.name, "yes" if t.exists else "not yet", version, t.path)
    out.print(listing)


def write_result(result: Any, path: Path) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
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
    if output_format == "json":
        out.out(json.dumps(result.to_pylist(), default=str, indent=2), highlight=False)
        return
    total = result.num_rows
    table = Table(caption=f"{limit:,} of {total:,} rows (--limit)" if total > limit else None)
    for column in result.column_names:
        table.add_column(column)
    for row in result.slice(0, limit).to_pylist():  # only the rows shown become Python
        table.add_row(*["-" if v is None else str(v) for v in row.values()])
    out.print(table)
