"""Runbook: a bad model promoted by mistake is rolled back to the previous state exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pytest
from pymongo import MongoClient
from pyspark.sql import functions as F
from typer.testing import CliRunner

from cli.main import app
from jobs.features.build import build_customer_features
from jobs.platform.lake import read_table, table_version
from jobs.platform.registry import CHAMPION, configure_mlflow, version_by_alias
from jobs.scoring.run import score_date
from jobs.sync.run import sync_full
from jobs.sync.state import served_collection
from schemas.features import FEATURE_NAMES
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT

pytestmark = pytest.mark.e2e

BAD_NIGHT = dt.date(1997, 12, 20)  # after every night the other e2e tests run


def _register_bad_model(settings: Settings) -> str:
    """A model trained on noise: what 'promoted by mistake' looks like."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2_000, len(FEATURE_NAMES)))
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1},
        lgb.Dataset(x, label=rng.integers(0, 2, size=2_000), feature_name=list(FEATURE_NAMES)),
        num_boost_round=5,
    )
    configure_mlflow(settings)
    with mlflow.start_run(run_name="bad-model"):
        info = mlflow.lightgbm.log_model(
            booster, name="model", registered_model_name=settings.model.name
        )
    return str(info.registered_model_version)


def _snapshot(spark: Any, settings: Settings) -> list[tuple[Any, ...]]:
    rows = read_table(spark, settings, PREDICTIONS_CURRENT).orderBy("customer_id").collect()
    return [(r.customer_id, r.model_version, r.score, r.score_date) for r in rows]


@pytest.mark.reliability
def test_rollback_returns_to_the_previous_state(
    spark: Any, settings: Settings, night: Any, reliability_report: Any
) -> None:
    client = configure_mlflow(settings)
    good = version_by_alias(client, model_name=settings.model.name, alias=CHAMPION)
    assert good is not None
    before = _snapshot(spark, settings)
    version_before = table_version(spark, settings, PREDICTIONS_CURRENT)

    bad_version = _register_bad_model(settings)
    client.set_registered_model_alias(settings.model.name, CHAMPION, bad_version)
    build_customer_features(spark, settings, as_of=BAD_NIGHT)
    score_date(spark, settings, score_date=BAD_NIGHT)
    sync_full(spark, settings)
    bad_rows = read_table(spark, settings, PREDICTIONS_CURRENT).where(
        F.col("model_version") == bad_version
    )
    assert bad_rows.count() > 0

    result = CliRunner().invoke(app, ["rollback", "--to-version", str(good.version)])
    assert result.exit_code == 0, result.output

    champion = version_by_alias(client, model_name=settings.model.name, alias=CHAMPION)
    after = _snapshot(spark, settings)
    reliability_report.record(
        scenario="10 bad model rolled back",
        load=f"{len(before):,} customers",
        faults=1,
        rows_lost=len(set(before) - set(after)),
        rows_duplicated=len(after) - len(set(after)),
        detail=f"champion v{bad_version} -> v{good.version}, current restored and resynced",
    )
    assert champion is not None and str(champion.version) == str(good.version)
    assert after == before
    assert table_version(spark, settings, PREDICTIONS_CURRENT) > version_before  # a restore commit
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.effective_uri)
    try:
        coll = served_collection(mongo, settings)
        assert coll.count_documents({}) == len(before)
        name = settings.model.name
        assert coll.count_documents({f"models.{name}.model_version": bad_version}) == 0
        sample = {c: (v, s) for c, v, s, _ in before[:50]}
        for doc in coll.find({"_id": {"$in": list(sample)}}):
            assert (doc["models"][name]["model_version"], doc["models"][name]["score"]) == sample[
                doc["_id"]
            ]
    finally:
        mongo.close()


def test_rollback_refuses_a_version_that_is_already_champion(
    settings: Settings, night: Any
) -> None:
    client = configure_mlflow(settings)
    current = version_by_alias(client, model_name=settings.model.name, alias=CHAMPION)
    assert current is not None
    result = CliRunner().invoke(app, ["rollback", "--to-version", str(current.version)])
    assert result.exit_code == 1
    assert "already the champion" in result.output
