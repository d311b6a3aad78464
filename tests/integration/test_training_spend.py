"""A regression definition (label ``spend``) on CDNOW: real Spark + Delta, real MLflow registry.

One small scenario for score date 1998-02-01, H=90 (5 weekly as-of dates): the spend
model is trained with the regression objective, beats the mean-spend and last-year's
pace baselines on RMSE, is promoted; a deliberately worse challenger (one feature)
is refused and the champion does not move.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.lakehouse.ingest import cdnow_path, ingest_orders
from jobs.platform.lake import read_table
from jobs.platform.registry import CHALLENGER, CHAMPION, configure_mlflow, version_by_alias
from jobs.training.pipeline import TrainResult, evaluate_and_register
from jobs.training.train import fit_candidate
from jobs.training.trainset import TrainingData, load_training_data
from schemas.models import ModelDefinition
from schemas.settings import Settings
from schemas.tables import SILVER_ORDERS

pytestmark = pytest.mark.integration

SCORE_DATE = dt.date(1998, 2, 1)
MODEL = "it_spend_90d"
SPEND = ModelDefinition(name=MODEL, label="spend", horizon_days=90)
WEAK = ModelDefinition(name=MODEL, label="spend", horizon_days=90, features=("tenure_days",))


@pytest.fixture(scope="module")
def small(settings: Settings) -> Settings:
    model = settings.model.model_copy(
        update={
            "training_dates": 5,
            "num_boost_round": 150,
            "learning_rate": 0.1,
            "early_stopping_rounds": 15,
            "additional": [SPEND],
        }
    )
    return settings.model_copy(update={"model": model})


@pytest.fixture(scope="module")
def data(spark: Any, small: Settings) -> TrainingData:
    ingest_orders(spark, small, path=cdnow_path())  # skipped when this run already ingested it
    return load_training_data(spark, small, definition=SPEND, score_date=SCORE_DATE)


@pytest.fixture(scope="module")
def scenario(spark: Any, small: Settings, data: TrainingData) -> dict[str, Any]:
    client = configure_mlflow(small)

    def aliases() -> tuple[str | None, ...]:
        found = [
            version_by_alias(client, model_name=MODEL, alias=a) for a in (CHAMPION, CHALLENGER)
        ]
        return tuple(None if mv is None else str(mv.version) for mv in found)

    def gate(candidate: Any) -> TrainResult:
        return evaluate_and_register(
            spark,
            small,
            candidate=candidate,
            data=data,
        )

    out: dict[str, Any] = {}
    out["c1"] = fit_candidate(data, definition=SPEND, settings=small)
    out["r1"] = gate(out["c1"])
    out["aliases_after_r1"] = aliases()
    out["rw"] = gate(fit_candidate(data, definition=WEAK, settings=small))
    out["aliases_after_rw"] = aliases()
    return out


def test_spend_label_is_the_amount_ordered_in_the_horizon(
    spark: Any, small: Settings, data: TrainingData
) -> None:
    holdout = data.period("holdout")
    start = data.as_of_dates[-1]
    end = start + dt.timedelta(days=90)
    orders = read_table(spark, small, SILVER_ORDERS).where(
        (F.col("order_date") >= F.lit(start)) & (F.col("order_date") < F.lit(end))
    )
    spent = {r[0]: r[1] for r in orders.groupBy("customer_id").agg(F.sum("amount")).collect()}
    labels = dict(zip(holdout["customer_id"], holdout["label"], strict=True))
    assert {c for c, v in labels.items() if v > 0} == {c for c, v in spent.items() if v > 0}
    assert all(labels[c] == pytest.approx(v) for c, v in spent.items() if c in labels)
    assert (holdout["label"] == 0).mean() > 0.5  # zero-inflated: most customers spend nothing


def test_spend_model_beats_the_baselines_and_becomes_champion(scenario: dict[str, Any]) -> None:
    r1 = scenario["r1"]
    assert r1.decision.promote, r1.decision.reason
    assert scenario["aliases_after_r1"] == (r1.version, None)
    assert set(r1.baselines) == {"prior", "monetary_365d"}
    for name, base in r1.baselines.items():
        assert r1.metrics["rmse"] < base["rmse"], name
    assert r1.metrics["gini"] > r1.baselines["monetary_365d"]["gini"]
    assert r1.metrics["r2"] > 0.0
    assert min(scenario["c1"].scores) >= 0.0  # amounts, never negative


def test_regression_metrics_and_baselines_are_logged_in_mlflow(
    small: Settings, scenario: dict[str, Any]
) -> None:
    r1 = scenario["r1"]
    run = configure_mlflow(small).get_run(r1.run_id)
    metrics, params = run.data.metrics, run.data.params
    for key in ("rmse", "mae", "r2", "spearman", "gini", "top_decile_share"):
        assert metrics[f"holdout_{key}"] == pytest.approx(r1.metrics[key]), key
    assert metrics["baseline_prior_rmse"] == pytest.approx(r1.baselines["prior"]["rmse"])
    assert "baseline_monetary_365d_gini" in metrics
    assert "holdout_roc_auc" not in metrics
    assert (params["objective"], params["task"], params["label"]) == (
        "tweedie",
        "regression",
        "spend",
    )
    assert run.data.tags["gate.verdict"] == "promote"


def test_worse_regression_challenger_is_refused(scenario: dict[str, Any]) -> None:
    r1, rw = scenario["r1"], scenario["rw"]
    assert rw.decision.verdict == "reject"
    assert "RMSE" in rw.decision.reason
    assert rw.metrics["rmse"] > r1.metrics["rmse"]
    assert scenario["aliases_after_rw"] == (r1.version, rw.version)  # champion did not move
