"""One whole night on real components: Dagster run, Delta, MLflow, Mongo-wire server, uvicorn."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from deltalake import DeltaTable as RustDeltaTable
from pymongo import MongoClient
from pyspark.sql import functions as F
from typer.testing import CliRunner

from cli.main import app
from jobs.platform.lake import read_table, table_path
from jobs.sync.state import served_collection
from schemas.settings import Settings, get_settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.e2e.conftest import SCORE_DATE, NightRun

pytestmark = pytest.mark.e2e


def test_the_contract_check_ran_and_passed(night: Any) -> None:
    evaluations = night.get_asset_check_evaluations()
    contract = [e for e in evaluations if e.check_name == "customer_features_contract"]
    assert len(contract) == 1
    assert contract[0].passed


def test_history_has_one_row_per_featured_customer(
    spark: Any, settings: Settings, night: Any
) -> None:
    features = read_table(spark, settings, CUSTOMER_FEATURES).where(
        F.col("as_of_date") == SCORE_DATE
    )
    history = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        F.col("score_date") == SCORE_DATE
    )
    n_features = features.count()
    assert n_features > 20_000  # CDNOW: 23,570 customers ordered before the score date
    assert history.count() == n_features
    assert history.select("customer_id").distinct().count() == n_features
    assert (
        history.where(F.col("score").isNull() | (F.col("score") < 0) | (F.col("score") > 1)).count()
        == 0
    )


def test_current_has_one_row_per_customer(spark: Any, settings: Settings, night: Any) -> None:
    current = read_table(spark, settings, PREDICTIONS_CURRENT)
    champion_history = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        F.col("model_role") == "champion"
    )
    assert current.count() == current.select("customer_id").distinct().count()
    assert current.count() == champion_history.select("customer_id").distinct().count()


def test_mongo_holds_exactly_current(spark: Any, settings: Settings, night: Any) -> None:
    n_current = read_table(spark, settings, PREDICTIONS_CURRENT).count()
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.effective_uri)
    try:
        coll = served_collection(client, settings)
        assert coll.count_documents({}) == n_current
    finally:
        client.close()


def test_independent_reader_sees_same_rows(spark: Any, settings: Settings, night: Any) -> None:
    for spec in (PREDICTIONS_HISTORY, PREDICTIONS_CURRENT, CUSTOMER_FEATURES):
        rust = RustDeltaTable(table_path(settings, spec))
        spark_rows = read_table(spark, settings, spec, version=rust.version()).count()
        assert rust.to_pyarrow_table().num_rows == spark_rows, spec.name


def test_api_returns_the_delta_score_for_a_known_customer(
    spark: Any, settings: Settings, api_url: str
) -> None:
    row = (
        read_table(spark, settings, PREDICTIONS_CURRENT)
        .orderBy(F.col("score").desc())
        .select("customer_id", "score", "model_version", "score_date")
        .first()
    )
    assert row is not None
    resp = httpx.get(f"{api_url}/v1/customers/{row.customer_id}/predictions", timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert body["known"] is True
    [pred] = body["predictions"]
    assert pred["source"] == "batch"
    assert pred["score"] == row.score
    assert pred["model_version"] == row.model_version
    assert pred["score_date"] == row.score_date.isoformat()


def test_api_answers_an_unknown_customer_with_a_flagged_fallback(
    settings: Settings, api_url: str
) -> None:
    resp = httpx.get(f"{api_url}/v1/customers/NEW-CUSTOMER-1/predictions", timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert body["known"] is False
    [pred] = body["predictions"]
    assert pred["source"] == "prior"
    assert 0.0 < pred["score"] < 0.5
    assert pred["score_date"] is None


def test_the_night_report_is_written_and_linked(settings: Settings, night: Any) -> None:
    [materialization] = [
        m
        for m in night.get_asset_materialization_events()
        if m.asset_key is not None and m.asset_key.to_user_string() == "reports/nightly"
    ]
    metadata = materialization.materialization.metadata
    path = Path(metadata["report"].value)  # type: ignore[arg-type]
    assert path == Path(settings.data_dir) / "reports" / SCORE_DATE.isoformat() / "nightly.html"
    page = path.read_text()
    for section in (
        "Coverage",
        "Score distribution",
        "Feature drift",
        "Champion vs challenger",
        "Gate",
        "Sync",
    ):
        assert f"<h2>{section}</h2>" in page
    gate = page.split("<h2>Gate</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<td>verdict</td><td>promote</td>" in gate  # the night's first model
    assert "<td>champion version then</td><td>none</td>" in gate
    assert "data:image/png;base64," in page
    assert metadata["coverage"].value == 1.0


def test_the_night_report_shows_the_sync_that_mongo_holds(settings: Settings, night: Any) -> None:
    [materialization] = [
        m
        for m in night.get_asset_materialization_events()
        if m.asset_key is not None and m.asset_key.to_user_string() == "reports/nightly"
    ]
    page = Path(materialization.materialization.metadata["report"].value).read_text()  # type: ignore[arg-type]
    section = page.split("<h2>Sync</h2>", 1)[1]
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.effective_uri)
    try:
        documents = served_collection(client, settings).count_documents({})
    finally:
        client.close()
    assert f"<td>documents in the collection</td><td>{documents}</td>" in section
    assert "<td>versions of predictions.current not yet synced</td><td>0</td>" in section
    assert "<td>mismatches</td><td>0</td>" in section


def test_the_history_asset_shows_a_score_histogram(night: Any) -> None:
    [materialization] = [
        m
        for m in night.get_asset_materialization_events()
        if m.asset_key is not None and m.asset_key.to_user_string() == "predictions/history"
    ]
    metadata = materialization.materialization.metadata
    table = str(metadata["score_histogram"].value)
    rows = table.splitlines()[2:]
    assert len(rows) == 10
    counted = sum(int(r.split("|")[2].replace(",", "")) for r in rows)
    assert counted == metadata["rows"].value
    # The real CDNOW champion scored through its compiled trees, not the LightGBM fallback.
    predictors = metadata["predictors"].value
    assert isinstance(predictors, dict) and "purchase_30d/champion" in predictors
    assert {kind for rows in predictors.values() for kind in rows} == {"compiled"}
    champion_rows = sum(predictors["purchase_30d/champion"].values())
    assert champion_rows == metadata["rows"].value


def test_the_champion_asset_links_its_mlflow_run(settings: Settings, night: Any) -> None:
    [materialization] = [
        m
        for m in night.get_asset_materialization_events()
        if m.asset_key is not None and m.asset_key.to_user_string() == "models/champion"
    ]
    metadata = materialization.materialization.metadata
    run_id = metadata["mlflow_run_id"].value
    url = str(metadata["mlflow_run"].value)
    assert url.startswith("http://127.0.0.1:5000/#/experiments/")
    assert url.endswith(f"/runs/{run_id}")


def test_status_reads_the_night_without_starting_spark(
    spark: Any, settings: Settings, night: Any, test_env: dict[str, str]
) -> None:
    code = (
        "from rich.console import Console; from cli.status import show_status, sync_lag;"
        "from schemas.settings import get_settings;"
        "show_status(get_settings(), console=Console(width=200));"
        "print('lag:', sync_lag(get_settings()));"
        "from pyspark import SparkContext;"
        "print('spark started:', SparkContext._active_spark_context is not None)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **test_env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "spark started: False" in out
    latest = spark.sql(
        f"DESCRIBE HISTORY delta.`{table_path(settings, PREDICTIONS_CURRENT)}` LIMIT 1"
    ).first()["version"]
    assert f"lag: ({latest}, {latest}, 0)" in out
    assert "last Dagster runs" in out and "nightly" in out


def test_the_night_prints_a_line_per_step_and_logs_the_rest(night_run: NightRun) -> None:
    result, printed = night_run.result, night_run.printed
    lines = printed.splitlines()
    steps = [e.step_key for e in result.all_events if e.is_step_success]
    assert lines[0] == f"night {SCORE_DATE} · Dagster run {result.run_id}", printed
    assert len(lines) == len(steps) + 2, printed
    assert all(line.startswith("✓ ") for line in lines[1:-1]), printed
    rows = result.asset_materializations_for_node("predictions__history")[0].metadata["rows"].value
    [history] = [line for line in lines if line.startswith("✓ predictions/history ")]
    assert f" {rows:,} rows " in history and " s  " in history
    assert "✓ check freshness_check " in printed  # a night of a past date passes it
    assert lines[-1].startswith("done in ") and lines[-1].endswith(
        f" · log data/logs/{result.run_id}.log"
    ), printed
    # Nothing of Dagster's own logging on the console; all of it in the run's log file.
    assert "DEBUG" not in printed and "STEP_START" not in printed
    log = night_run.log.read_text()
    assert log.startswith(f"lakescore: night {SCORE_DATE}, Dagster run {result.run_id}")
    assert log.count(" - STEP_SUCCESS - ") == len(steps)
    assert " - DEBUG - nightly - " in log


def test_the_demo_fits_on_one_screen_and_shows_every_tier(
    night_run: NightRun,
    settings: Settings,
    api_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What ``lakescore demo`` prints after its night (the night's lines above), on an
    80-column terminal: the lookup table of every tier, then where to look next."""
    from rich.console import Console

    from cli.demo import show_tiers, show_where_next

    monkeypatch.chdir(workdir)
    printed = io.StringIO()
    console = Console(file=printed, width=80)
    answers = show_tiers(console, api_url)
    show_where_next(console, settings, score_date=SCORE_DATE, url=api_url, serving=False)
    screen = night_run.printed + printed.getvalue()
    assert len(screen.splitlines()) <= 40, screen
    sources = {
        lookup.customer: [p["source"] for p in body["predictions"]] for lookup, body in answers
    }
    assert sources == {
        "00001": ["batch"],
        "23570": ["batch"],
        "NEW-1": ["coldstart"],  # a new customer with request context: the cold-start model
        "NEW-2": ["prior"],  # one without: the prior
    }, screen
    for where in ("night report", "Dagster UI", "MLflow UI", "nightly.html", "dagster dev"):
        assert where in screen, screen


def test_a_failed_night_names_its_step_and_its_log(
    night: Any, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lakescore night`` over a landing folder that does not exist: the ingest step fails,
    and the output says which step and where its whole log is, in a few lines (after the
    night above: nothing of it changes)."""
    monkeypatch.setenv("LAKESCORE_LAKEHOUSE__LANDING_DIR", str(workdir / "no-such-landing"))
    monkeypatch.setenv("COLUMNS", "200")  # one line per message, to read the log's path back
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["night", "--date", "1997-11-02"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    printed = result.output
    assert result.exit_code == 1, printed
    assert "nightly 1997-11-02 failed at step orders" in printed, printed
    assert "✗ orders " in printed and "FileNotFoundError: landing folder" in printed, printed
    [log] = re.findall(r"Full log: (\S+\.log)", printed)
    assert Path(log).parent == workdir / "data" / "logs", printed
    text = Path(log).read_text()
    assert "STEP_FAILURE" in text and "Stack Trace:" in text
    assert len(printed.splitlines()) <= 4, printed  # header, step, message
    assert "DEBUG" not in printed and "Stack Trace" not in printed, printed
