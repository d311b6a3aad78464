"""``lakescore sql``: DuckDB over the lake's Delta tables through delta-rs, no Spark.

Every table of ``schemas.tables`` is written with delta-rs in its own schema (one row per
version, values that name the table), then read back by its Spark SQL name; tables not
written yet, time travel, bad input (exit 2), the output files, the process staying free
of Spark, and the README's DuckDB and polars snippets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from cli.lake_sql import SqlInputError, lake_tables, named_tables, run_sql
from cli.main import app
from schemas.settings import Settings, get_settings
from schemas.tables import (
    ALL_TABLES,
    PREDICTIONS_CURRENT,
    PREDICTIONS_HISTORY,
    REASONS_DDL,
    SCORE_RUNS,
    TableSpec,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Spark DDL types -> Arrow (what Delta stores for them; TIMESTAMP is UTC-adjusted).
_TYPES = {
    "STRING": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    REASONS_DDL: pa.list_(
        pa.struct(
            [("feature", pa.string()), ("contribution", pa.float64()), ("value", pa.float64())]
        )
    ),
    "MAP<STRING, DOUBLE>": pa.map_(pa.string(), pa.float64()),
}


def arrow_schema(spec: TableSpec) -> pa.Schema:
    return pa.schema([(name, _TYPES[kind]) for name, kind in spec.fields])


def one_row(spec: TableSpec, n: int) -> pa.Table:
    """Row ``n`` of ``spec``: strings name the table and the row, numbers are ``n``."""
    values = {
        pa.string(): f"{spec.name}#{n}",
        pa.int32(): n,
        pa.int64(): n,
        pa.float64(): n + 0.5,
        pa.bool_(): True,
        pa.date32(): dt.date(1998, 1, 1) + dt.timedelta(days=n),
        pa.timestamp("us", tz="UTC"): dt.datetime(1998, 1, 1, tzinfo=dt.UTC),
        _TYPES[REASONS_DDL]: [{"feature": f"f{n}", "contribution": n + 0.25, "value": None}],
        _TYPES["MAP<STRING, DOUBLE>"]: [(str(n), n + 0.75)],
    }
    schema = arrow_schema(spec)
    return pa.table({f.name: [values[f.type]] for f in schema}, schema=schema)


def append(settings: Settings, spec: TableSpec, n: int) -> None:
    write_deltalake(
        settings.table_path(spec.name),
        one_row(spec, n),
        mode="append",
        partition_by=list(spec.partition_by) or None,
    )


def own_lake(settings: Settings, root: Path) -> Settings:
    return settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(root / "lake")})}
    )


@pytest.fixture
def lake(settings: Settings, tmp_path: Path) -> Settings:
    """Every lake table at version 1: version 0 holds row 0, version 1 rows 0 and 1."""
    own = own_lake(settings, tmp_path)
    for spec in ALL_TABLES:
        for n in range(2):
            append(own, spec, n)
    return own


@contextlib.contextmanager
def cli_settings(lake: Settings) -> Iterator[None]:
    """The CLI reads its settings from the environment: point it at ``lake``."""
    saved = os.environ.get("LAKESCORE_LAKE__ROOT")
    os.environ["LAKESCORE_LAKE__ROOT"] = lake.lake.root
    get_settings.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LAKESCORE_LAKE__ROOT", None)
        else:
            os.environ["LAKESCORE_LAKE__ROOT"] = saved
        get_settings.cache_clear()


def test_every_lake_table_answers_under_its_spark_name(lake: Settings) -> None:
    assert len(ALL_TABLES) >= 13
    for spec in ALL_TABLES:
        schema = arrow_schema(spec)
        text = next(f.name for f in schema if f.type == pa.string())
        got = run_sql(lake, query=f"SELECT * FROM {spec.name} ORDER BY {text}")
        assert got.column_names == spec.columns, spec.name
        assert got.column(text).to_pylist() == [f"{spec.name}#0", f"{spec.name}#1"], spec.name
        number = next((f.name for f in schema if f.type == pa.float64()), None)
        if number is not None:
            assert got.column(number).to_pylist() == [0.5, 1.5], spec.name
    listed = {t.name: t for t in lake_tables(lake)}
    assert set(listed) == {spec.name for spec in ALL_TABLES}
    assert all(t.exists and t.version == 1 for t in listed.values())


def test_a_join_across_schemas_and_quoted_names(lake: Settings) -> None:
    query = (
        'SELECT count(*) AS n FROM "predictions"."history" h '
        "JOIN Monitoring.Score_Runs r ON h.score_date = r.score_date"
    )
    assert named_tables(query) == ["monitoring.score_runs", "predictions.history"]
    assert run_sql(lake, query=query).column("n").to_pylist() == [2]


def test_tables_not_written_yet_are_skipped(settings: Settings, tmp_path: Path) -> None:
    lake = own_lake(settings, tmp_path)
    append(lake, PREDICTIONS_HISTORY, 0)
    listed = {t.name: t for t in lake_tables(lake)}
    assert [n for n, t in listed.items() if t.exists] == [PREDICTIONS_HISTORY.name]
    assert listed[SCORE_RUNS.name].version is None
    assert listed[SCORE_RUNS.name].path == lake.table_path(SCORE_RUNS.name)

    # A query that names no table sees the lake's existing tables only.
    catalog = run_sql(
        lake,
        query="SELECT table_schema || '.' || table_name AS t FROM information_schema.tables "
        "WHERE table_schema <> 'main' ORDER BY 1",
    )
    assert catalog.column("t").to_pylist() == [PREDICTIONS_HISTORY.name]
    count = run_sql(lake, query=f"SELECT count(*) AS n FROM {PREDICTIONS_HISTORY.name}")
    assert count.column("n").to_pylist() == [1]
    with pytest.raises(SqlInputError, match=r"monitoring.score_runs does not exist yet"):
        run_sql(lake, query=f"SELECT * FROM {SCORE_RUNS.name}")

    with cli_settings(lake):
        as_json = CliRunner().invoke(app, ["sql", "--tables", "--format", "json"])
        shown = CliRunner().invoke(app, ["sql", "--tables"])
    assert as_json.exit_code == 0, as_json.output
    assert {t["table"]: t for t in json.loads(as_json.stdout)} == {
        t.name: {"table": t.name, "exists": t.exists, "version": t.version, "path": t.path}
        for t in listed.values()
    }
    assert shown.exit_code == 0, shown.output
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in shown.stdout.splitlines()]
    rows = {c[0]: c[1:3] for c in cells if c[0] in listed}
    assert rows[PREDICTIONS_HISTORY.name] == ["yes", "0"]
    assert rows[SCORE_RUNS.name] == ["not yet", "-"] and len(rows) == len(ALL_TABLES)


def test_time_travel_by_version_reads_the_older_version(lake: Settings) -> None:
    query = (
        f"SELECT h.customer_id, c.customer_id AS current_id FROM {PREDICTIONS_HISTORY.name} h "
        f"JOIN {PREDICTIONS_CURRENT.name} c ON h.score = c.score ORDER BY 1"
    )
    now = run_sql(lake, query=query).to_pylist()
    then = run_sql(lake, query=query, as_of_version=0).to_pylist()
    assert now == [
        {"customer_id": "predictions.history#0", "current_id": "predictions.current#0"},
        {"customer_id": "predictions.history#1", "current_id": "predictions.current#1"},
    ]
    assert then == now[:1]  # both tables the query names travelled


def test_time_travel_by_timestamp(settings: Settings, tmp_path: Path) -> None:
    lake = own_lake(settings, tmp_path)
    query = f"SELECT customer_id FROM {PREDICTIONS_HISTORY.name} ORDER BY 1"
    before_the_table = dt.datetime.now(dt.UTC)
    time.sleep(0.3)
    append(lake, PREDICTIONS_HISTORY, 0)
    time.sleep(0.3)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.3)
    append(lake, PREDICTIONS_HISTORY, 1)

    assert run_sql(lake, query=query).column(0).to_pylist() == [
        "predictions.history#0",
        "predictions.history#1",
    ]
    then = run_sql(lake, query=query, as_of_timestamp=between)
    assert then.column(0).to_pylist() == ["predictions.history#0"]
    naive = run_sql(lake, query=query, as_of_timestamp=between.replace(tzinfo=None))  # UTC
    assert naive.equals(then)
    # delta-rs alone would answer a time before the table with its version 0.
    with pytest.raises(SqlInputError, match=r"predictions.history has no version as of"):
        run_sql(lake, query=query, as_of_timestamp=before_the_table)

    with cli_settings(lake):
        runner = CliRunner()
        local = between.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
        shown = runner.invoke(app, ["sql", query, "--as-of-timestamp", local, "--format", "csv"])
        early = before_the_table.isoformat().replace("+00:00", "Z")
        refused = runner.invoke(app, ["sql", query, "--as-of-timestamp", early])
        garbled = runner.invoke(app, ["sql", query, "--as-of-timestamp", "yesterday"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == ['"customer_id"', '"predictions.history#0"']
    assert refused.exit_code == 2 and "predictions.history has no version" in refused.stderr
    assert garbled.exit_code == 2 and "must be an ISO 8601 time" in garbled.stderr


def test_a_version_a_table_does_not_have_names_the_table_and_its_range(lake: Settings) -> None:
    with pytest.raises(
        SqlInputError, match=r"predictions.current has versions 0..1: version 7 is newer"
    ):
        run_sql(lake, query=f"SELECT * FROM {PREDICTIONS_CURRENT.name}", as_of_version=7)


def test_the_command_line(lake: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    query = f"SELECT customer_id, score, score_date FROM {PREDICTIONS_CURRENT.name} ORDER BY 1"
    expected = run_sql(lake, query=query)
    with cli_settings(lake):
        shown = runner.invoke(app, ["sql", query, "--format", "json"])
        old = runner.invoke(app, ["sql", query, "--as-of-version", "0", "--format", "csv"])
        table = runner.invoke(app, ["sql", query, "--limit", "1"], terminal_width=200)
        written = {
            name: runner.invoke(app, ["sql", query, "--out", str(tmp_path / name)])
            for name in ("out.csv", "out.parquet")
        }
        bad_queries = {
            bad: runner.invoke(app, ["sql", bad])
            for bad in (
                "SELEC 1",
                f"SELECT nope FROM {PREDICTIONS_CURRENT.name}",
                "SELECT * FROM predictions.nope",
                "SELECT * FROM read_csv('/etc/passwd')",
            )
        }
        travel = runner.invoke(app, ["sql", query, "--as-of-version", "9"])
        no_query = runner.invoke(app, ["sql"])
        bad_out = runner.invoke(app, ["sql", query, "--out", str(tmp_path / "out.xlsx")])

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == [
        {"customer_id": "predictions.current#0", "score": 0.5, "score_date": "1998-01-01"},
        {"customer_id": "predictions.current#1", "score": 1.5, "score_date": "1998-01-02"},
    ]
    assert old.exit_code == 0, old.output
    assert old.stdout.splitlines() == [
        '"customer_id","score","score_date"',
        '"predictions.current#0",0.5,1998-01-01',
    ]
    assert table.exit_code == 0, table.output
    assert "predictions.current#0" in table.stdout
    assert "predictions.current#1" not in table.stdout and "1 of 2 rows" in table.stdout

    for name, result in written.items():
        assert result.exit_code == 0, result.output
        assert f"2 rows written to {tmp_path / name}" in result.stdout
    assert pq.read_table(tmp_path / "out.parquet").equals(expected)
    types = pcsv.ConvertOptions(column_types=expected.schema)
    assert pcsv.read_csv(tmp_path / "out.csv", convert_options=types).equals(expected)

    says = {
        "SELEC 1": "syntax error",
        f"SELECT nope FROM {PREDICTIONS_CURRENT.name}": 'column "nope" not found',
        "SELECT * FROM predictions.nope": "nope does not exist",
        "SELECT * FROM read_csv('/etc/passwd')": "disabled by configuration",
    }
    for bad, refused in bad_queries.items():
        assert refused.exit_code == 2, (bad, refused.output)
        message = " ".join(refused.stderr.split())  # rich wraps long lines
        assert says[bad] in message, (bad, message)
        assert "lake tables: " in message and PREDICTIONS_HISTORY.name in message
        assert "Traceback" not in refused.output
    assert travel.exit_code == 2
    assert "predictions.current has versions 0..1: version 9 is newer" in " ".join(
        travel.stderr.split()
    )
    assert no_query.exit_code == 2 and "give a query" in no_query.stderr
    assert bad_out.exit_code == 2 and ".csv or .parquet" in bad_out.stderr


def test_the_command_runs_without_spark(lake: Settings) -> None:
    """``lakescore sql`` in a process of its own never imports pyspark (nor the jobs)."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "r = CliRunner().invoke(app, ['sql', 'SELECT count(*) AS n FROM predictions.history',"
        " '--format', 'csv'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.stdout.split()[-1])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'delta', 'dagster', 'jobs'}))\n"
    )
    env = {**os.environ, "LAKESCORE_LAKE__ROOT": lake.lake.root}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "[]"]


def _readme_snippets() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Querying predictions (analysts)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [b for b in blocks if "duckdb" in b or "polars" in b]


def test_the_readme_duckdb_and_polars_snippets_run(
    lake: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    snippets = _readme_snippets()
    code = "\n".join(snippets)
    assert "import duckdb" in code and "import polars" in code
    data = Path(lake.lake.root).parent  # the snippets read data/lake/...
    (data / "data").mkdir()
    (data / "data" / "lake").symlink_to(lake.lake.root)
    scope: dict[str, object] = {}
    with contextlib.chdir(data):
        for snippet in snippets:
            exec(compile(snippet, "README.md", "exec"), scope)
    shown = capsys.readouterr().out  # duckdb's table of score dates and counts
    assert re.search(r"1998-01-01\s*│\s*1\b", shown) and re.search(r"1998-01-02\s*│\s*1\b", shown)
    # The names the README's snippets end with, and what they hold on this lake.
    assert scope["first_night"].count_rows() == 1  # type: ignore[attr-defined]
    assert scope["confident"]["customer_id"].to_list() == ["predictions.current#1"]  # type: ignore[index]
