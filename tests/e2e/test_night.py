"""One whole night on real components: Dagster run, Delta, MLflow, Mongo-wire server, uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from deltalake import DeltaTable as RustDeltaTable
from pymongo import MongoClient
from pyspark.sql import functions as F

from jobs.platform.lake import read_table, table_path
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.e2e.conftest import SCORE_DATE

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
        coll = client[settings.mongo.database][settings.mongo.collection]
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
        documents = client[settings.mongo.database][settings.mongo.collection].count_documents({})
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
