"""``lakescore sql``: DuckDB over the lake's Delta tables through delta-rs, no Spark.

Every table of ``schemas.tables`` is written with delta-rs in its own schema (one row per
version, values that name the table), then read back by its Spark SQL name; time travel,
bad input (exit 2), the output files and the README's DuckDB and polars snippets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from cli.lake_sql import SqlInputError, lake_tables, named_tables, run_sql
from cli.main import app
from schemas.settings import LakeSettings, Settings, get_settings
from schemas.tables import ALL_TABLES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY, TableSpec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
_TYPES = {
    "STRING": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(spec: TableSpec) -> pa.Schema:
    fields = [part.strip().split(" ", 1) for part in spec.ddl.split(",")]
    return pa.schema([(name, _TYPES[kind]) for name, kind in fields])


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
    }
    schema = arrow_schema(spec)
    return pa.table({f.name: [values[f.type]] for f in schema}, schema=schema)


@pytest.fixture
def lake(settings: Settings, tmp_path: Path) -> Settings:
    own = settings.model_copy(update={"lake": LakeSettings(root=str(tmp_path / "lake"))})
    for spec in ALL_TABLES:
        path = own.table_path(spec.name)
        for n in range(2):  # version 0 holds row 0, version 1 rows 0 and 1
            write_deltalake(
                path, one_row(spec, n), mode="append", partition_by=list(spec.partition_by) or None
            )
    return own


@pytest.fixture
def cli_lake(lake: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LAKESCORE_LAKE__ROOT", lake.lake.root)
    get_settings.cache_clear()
    yield lake
    monkeypatch.undo()
    get_settings.cache_clear()


def test_every_lake_table_answers_under_its_spark_name(lake: Settings) -> None:
    assert len(ALL_TABLES) >= 13
    for spec in ALL_TABLES:
        first = next(
            c
            for c, t in zip(spec.columns, arrow_schema(spec), strict=True)
            if t.type == pa.string()
        )
        got = run_sql(lake, query=f"SELECT {first} FROM {spec.name} ORDER BY 1")
        assert got.column(first).to_pylist() == [f"{spec.name}#0", f"{spec.name}#1"], spec.name
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


def test_time_travel_reads_the_older_version(lake: Settings) -> None:
    query = f"SELECT customer_id FROM {PREDICTIONS_HISTORY.name} ORDER BY 1"
    now = run_sql(lake, query=query).column("customer_id").to_pylist()
    then = run_sql(lake, query=query, as_of_version=0).column("customer_id").to_pylist()
    assert now == ["predictions.history#0", "predictions.history#1"]
    assert then == ["predictions.history#0"]

    # By time: a third version written later; the time between the two reads version 1.
    time.sleep(1.1)
    between = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    write_deltalake(
        lake.table_path(PREDICTIONS_HISTORY.name),
        one_row(PREDICTIONS_HISTORY, 2),
        mode="append",
        partition_by=["score_date"],
    )
    assert len(run_sql(lake, query=query)) == 3
    assert (
        run_sql(lake, query=query, as_of_timestamp=between).column("customer_id").to_pylist() == now
    )


def test_a_version_a_table_does_not_have_names_the_table_and_its_range(lake: Settings) -> None:
    with pytest.raises(
        SqlInputError, match=r"predictions.current has versions 0..1: version 7 is newer"
    ):
        run_sql(lake, query=f"SELECT * FROM {PREDICTIONS_CURRENT.name}", as_of_version=7)


def test_the_command_line(cli_lake: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    query = f"SELECT customer_id, score FROM {PREDICTIONS_CURRENT.name} ORDER BY 1"
    shown = runner.invoke(app, ["sql", query, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == [
        {"customer_id": "predictions.current#0", "score": 0.5},
        {"customer_id": "predictions.current#1", "score": 1.5},
    ]
    old = runner.invoke(app, ["sql", query, "--as-of-version", "0", "--format", "csv"])
    assert old.exit_code == 0 and old.stdout.splitlines() == [
        '"customer_id","score"',
        '"predictions.current#0",0.5',
    ]
    for name in ("out.csv", "out.parquet"):
        written = runner.invoke(app, ["sql", query, "--out", str(tmp_path / name)])
        assert written.exit_code == 0, written.output
        back = (pq.read_table if name.endswith("parquet") else pcsv.read_csv)(tmp_path / name)
        assert back.column("customer_id").to_pylist() == [
            "predictions.current#0",
            "predictions.current#1",
        ]
    listing = runner.invoke(app, ["sql", "--tables"])
    assert listing.exit_code == 0 and "predictions.history" in listing.stdout

    for bad, says in (
        ("SELEC 1", "syntax error"),
        (f"SELECT nope FROM {PREDICTIONS_CURRENT.name}", 'column "nope" not found'),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
    ):
        refused = runner.invoke(app, ["sql", bad])
        assert refused.exit_code == 2, (bad, refused.output)
        assert says in refused.stderr and "lake tables: " in refused.stderr
    travel = runner.invoke(app, ["sql", query, "--as-of-version", "9"])
    assert travel.exit_code == 2 and "version 9 is newer than its latest" in travel.stderr


def _readme_snippets() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Querying predictions (analysts)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [b for b in blocks if "duckdb" in b or "polars" in b]


def test_the_readme_duckdb_and_polars_snippets_run(
    lake: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    [snippet] = _readme_snippets()
    data = Path(lake.lake.root).parent  # the snippets read data/lake/...
    (data / "data").mkdir()
    (data / "data" / "lake").symlink_to(lake.lake.root)
    scope: dict[str, object] = {}
    with contextlib.chdir(data):
        exec(compile(snippet, "README.md", "exec"), scope)
    assert "history" in scope and "pl" in scope
    assert "1998-01-01" in capsys.readouterr().out  # duckdb's table of score dates
