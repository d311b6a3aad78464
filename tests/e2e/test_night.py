"""One whole night on real components: Dagster run, Delta, MLflow, Mongo-wire server, uvicorn."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deltalake import DeltaTable as RustDeltaTable
from pymongo import MongoClient
from pyspark.sql import functions as F

from jobs.lake import read_table, table_path
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

SCORE_DATE = dt.date(1997, 10, 1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def night(spark: Any, settings: Settings) -> Any:
    from dagster import DagsterInstance

    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    defs = build_definitions(settings)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key=SCORE_DATE.isoformat(), instance=instance)
    assert result.success
    return result


@pytest.fixture(scope="module")
def api_url(night: Any, test_env: dict[str, str], workdir: Path) -> Iterator[str]:
    port = free_port()
    log = (workdir / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env={**os.environ, **test_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("uvicorn did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


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
    assert current.count() == current.select("customer_id").distinct().count()
    assert current.count() == read_table(spark, settings, PREDICTIONS_HISTORY).count()


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
        rust = RustDeltaTable(table_path(settings, spec)).to_pyarrow_table()
        assert rust.num_rows == read_table(spark, settings, spec).count(), spec.name


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
