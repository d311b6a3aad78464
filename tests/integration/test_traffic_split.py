"""A traffic split end to end: the night scores the champion, the challenger and a pinned
version for every customer (real Spark, Delta and MLflow), current carries the other
versions' scores beside the champion's, the sync carries them into the Mongo-wire server
(and its verification checks them), and a real API process serves each customer the score
of its arm over HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from api.experiments import CHAMPION_ARM, splits
from jobs.platform.lake import read_table
from jobs.scoring.run import score_date
from jobs.sync.changes import snapshot
from jobs.sync.documents import expected_models
from jobs.sync.run import sync
from jobs.sync.state import served_collection
from jobs.sync.verify import compare_sample
from schemas.settings import ExperimentSettings, Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.api.helpers import api_env, start_api
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 3, 1)
N = 400
EXPERIMENT = {
    "name": "next-model",
    "arms": [
        {"name": "chal", "share": 0.3, "version": "challenger"},
        {"name": "pin", "share": 0.3, "version": "3"},
        {"name": "ghost", "share": 0.3, "version": "9"},  # never registered
    ],
}


@pytest.fixture(scope="module")
def night(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    root = tmp_path_factory.mktemp("split")
    s = isolated(settings, root)
    s = s.model_copy(
        update={
            "api": s.api.model_copy(
                update={"experiments": [ExperimentSettings.model_validate(EXPERIMENT)]}
            ),
            "mongo": s.mongo.model_copy(update={"database": "t_" + uuid.uuid4().hex[:12]}),
        }
    )
    register_tiny_model(s, trees=10, seed=1)  # v1: champion
    register_tiny_model(s, trees=12, seed=2, alias="challenger")  # v2
    register_tiny_model(s, trees=8, seed=3, alias="spare")  # v3: pinned by the split
    write_feature_partition(spark, s, as_of=DAY, customers=N, seed=4)
    score_date(spark, s, score_date=DAY)
    result = sync(spark, s)
    assert result.verification is not None and result.verification.ok
    return s


def history_scores(spark: SparkSession, s: Settings) -> dict[tuple[str, str], dict[str, float]]:
    """(role, version) -> customer -> score, from predictions.history."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    rows = read_table(spark, s, PREDICTIONS_HISTORY).where(F.col("score_date") == DAY)
    for r in rows.select("model_role", "model_version", "customer_id", "score").collect():
        out.setdefault((r.model_role, r.model_version), {})[r.customer_id] = r.score
    return out


def test_the_night_scores_every_version_the_split_serves(
    spark: SparkSession, night: Settings
) -> None:
    history = history_scores(spark, night)
    assert {key: len(scores) for key, scores in history.items()} == {
        ("champion", "1"): N,
        ("challenger", "2"): N,
        ("pinned", "3"): N,
    }
    current = {
        r.customer_id: r
        for r in read_table(spark, night, PREDICTIONS_CURRENT)
        .select("customer_id", "model_version", "score", "challenger_version", "shadow_scores")
        .collect()
    }
    assert sorted(current) == sorted(history[("champion", "1")])
    for customer, row in current.items():
        assert (row.model_version, row.score) == ("1", history[("champion", "1")][customer])
        assert row.challenger_version == "2"
        assert row.shadow_scores == {
            "2": history[("challenger", "2")][customer],
            "3": history[("pinned", "3")][customer],
        }


def test_the_sync_carries_the_other_versions_and_verifies_them(
    spark: SparkSession, night: Settings
) -> None:
    history = history_scores(spark, night)
    client: MongoClient[dict[str, Any]] = MongoClient(night.mongo.effective_uri)
    try:
        served = served_collection(client, night)
        docs = {d["_id"]: d["models"][night.model.name] for d in served.find()}
        assert len(docs) == N
        for customer, entry in docs.items():
            assert entry["challenger_version"] == "2"
            assert entry["shadow_scores"] == {
                "2": history[("challenger", "2")][customer],
                "3": history[("pinned", "3")][customer],
            }
        # The verification compares them: one changed score is named.
        victim = sorted(docs)[7]
        served.update_one(
            {"_id": victim}, {"$set": {f"models.{night.model.name}.shadow_scores.3": -1.0}}
        )
        table = snapshot(spark, night, version=_current_version(spark, night))
        problems = compare_sample(served, expected_models(table, [victim, sorted(docs)[8]]))
        assert len(problems) == 1 and f"{victim}/{night.model.name}.shadow_scores" in problems[0]
        served.update_one(
            {"_id": victim},
            {
                "$set": {
                    f"models.{night.model.name}.shadow_scores.3": history[("pinned", "3")][victim]
                }
            },
        )
    finally:
        client.close()


def _current_version(spark: SparkSession, s: Settings) -> int:
    from jobs.platform.lake import table_version

    return table_version(spark, s, PREDICTIONS_CURRENT)


def test_each_customer_is_served_its_arm_over_http(
    spark: SparkSession, night: Settings, mongo_uri: str, tmp_path: Path
) -> None:
    history = history_scores(spark, night)
    env = api_env(
        workdir=tmp_path,
        mongo_uri=mongo_uri,
        database=night.mongo.database,
        tracking_uri=night.mlflow.tracking_uri,
        keys=[],
        experiments=[EXPERIMENT],
    )
    api = start_api(env, log_path=tmp_path / "uvicorn.log")
    try:
        split = splits(night)[night.model.name]
        customers = sorted(history[("champion", "1")])
        expected_version = {CHAMPION_ARM: ("champion", "1"), "chal": ("challenger", "2")}
        expected_version |= {"pin": ("pinned", "3"), "ghost": ("champion", "1")}
        seen: dict[str, int] = {}
        with httpx.Client(base_url=api.url, timeout=10) as http:
            batch = http.post("/v1/predictions/batch", json={"customer_ids": customers[:300]})
            assert batch.status_code == 200
            by_id = {r["customer_id"]: r for r in batch.json()["results"]}
            for customer in customers:
                if customer in by_id:
                    body = by_id[customer]
                else:
                    resp = http.get(f"/v1/customers/{customer}/predictions")
                    assert resp.status_code == 200
                    body = resp.json()
                [p] = body["predictions"]
                arm = split.arm_of(customer).name
                role, version = expected_version[arm]
                assert (p["experiment"], p["arm"], p["source"]) == ("next-model", arm, "batch")
                assert (p["model_version"], p["score"]) == (
                    version,
                    history[(role, version)][customer],
                ), customer
                seen[arm] = seen.get(arm, 0) + 1
            # A new customer gets the prior, its arm still named.
            new = http.get("/v1/customers/NEW-CUSTOMER-1/predictions").json()
            [p] = new["predictions"]
            assert p["source"] == "prior" and p["arm"] == split.arm_of("NEW-CUSTOMER-1").name
        assert set(seen) == {CHAMPION_ARM, "chal", "pin", "ghost"}, seen
    finally:
        api.stop()
