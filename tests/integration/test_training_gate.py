"""Training, the gate and the registry on CDNOW: real Spark + Delta, real MLflow registry (SQLite).

One scenario, in order, on one training set (score date 1998-02-01, small config):
v1 first model -> champion; v2 deliberately worse (one feature) -> refused;
v3 the v1 booster with a broken signature -> invalid, no alias; an operator points
the champion at the weak v2; v4 a re-run of v1 (same data, same seed) -> promoted;
v5 the same model retrained with another seed -> not promoted (a gain within the
noise); v6 the full model against a champion without recency and frequency -> promoted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import mlflow
import pytest
from mlflow.models import infer_signature
from pyspark.sql import functions as F

from jobs.lakehouse.ingest import cdnow_path, ingest_orders
from jobs.platform.lake import read_table, table_path
from jobs.platform.registry import (
    CHALLENGER,
    CHAMPION,
    configure_mlflow,
    load_booster,
    version_by_alias,
)
from jobs.training.pipeline import TrainResult, evaluate_and_register
from jobs.training.train import fit_candidate
from jobs.training.trainset import TrainingData, load_training_data
from schemas.features import FEATURE_NAMES
from schemas.models import ModelDefinition
from schemas.settings import Settings, primary_definition
from schemas.tables import GATE_DECISIONS, SILVER_ORDERS

pytestmark = pytest.mark.integration

SCORE_DATE = dt.date(1998, 2, 1)
MODEL = "it_gate_purchase_30d"


@pytest.fixture(scope="module")
def small(settings: Settings) -> Settings:
    model = settings.model.model_copy(
        update={
            "name": MODEL,
            "training_dates": 8,
            "num_boost_round": 150,
            "learning_rate": 0.1,
            "early_stopping_rounds": 15,
            "learning_curve": False,  # on for c4 only (its run's learning curve is checked)
        }
    )
    return settings.model_copy(update={"model": model})


@pytest.fixture(scope="module")
def data(spark: Any, small: Settings) -> TrainingData:
    ingest_orders(spark, small, path=cdnow_path())  # skipped when this run already ingested it
    definition = primary_definition(small)
    return load_training_data(spark, small, definition=definition, score_date=SCORE_DATE)


@pytest.fixture(scope="module")
def scenario(spark: Any, small: Settings, data: TrainingData) -> dict[str, Any]:
    client = configure_mlflow(small)
    out: dict[str, Any] = {}

    def gate(candidate: Any) -> TrainResult:
        return evaluate_and_register(
            spark,
            small,
            candidate=candidate,
            data=data,
        )

    def alias(name: str) -> str | None:
        mv = version_by_alias(client, model_name=MODEL, alias=name)
        return None if mv is None else str(mv.version)

    definition = primary_definition(small)
    out["c1"] = fit_candidate(data, definition=definition, settings=small)
    out["r1"] = gate(out["c1"])
    out["champion_after_r1"] = alias(CHAMPION)

    weak = ModelDefinition(name=MODEL, features=("tenure_days",))
    out["rw"] = gate(fit_candidate(data, definition=weak, settings=small))
    out["aliases_after_rw"] = (alias(CHAMPION), alias(CHALLENGER))

    broken_signature = infer_signature(
        data.period("holdout")[list(FEATURE_NAMES)].head(10).astype("float64").add_prefix("x_"),
        out["c1"].scores[:10],
    )
    out["rb"] = gate(dataclasses.replace(out["c1"], signature=broken_signature))
    out["aliases_after_rb"] = (alias(CHAMPION), alias(CHALLENGER))

    # An operator rolls the champion back to the weak model; a re-run of v1 must win it back.
    client.set_registered_model_alias(MODEL, CHAMPION, out["rw"].version)
    curved = small.model_copy(
        update={"model": small.model.model_copy(update={"learning_curve": True})}
    )
    out["c4"] = fit_candidate(data, definition=definition, settings=curved)
    out["r4"] = gate(out["c4"])
    out["aliases_after_r4"] = (alias(CHAMPION), alias(CHALLENGER))

    reseeded = small.model_copy(update={"model": small.model.model_copy(update={"seed": 7})})
    out["r5"] = gate(fit_candidate(data, definition=definition, settings=reseeded))
    out["aliases_after_r5"] = (alias(CHAMPION), alias(CHALLENGER))

    # The champion knows no recency and no frequency: the full model, which does, must win.
    no_counts = ("tenure_days", "monetary_all", "avg_basket_amount")
    client.set_registered_model_alias(
        MODEL,
        CHAMPION,
        gate(
            fit_candidate(
                data, definition=ModelDefinition(name=MODEL, features=no_counts), settings=small
            )
        ).version,
    )
    out["r6"] = gate(fit_candidate(data, definition=definition, settings=small))
    return out


def label_days(rows: Any, horizon: int) -> set[dt.date]:
    """Every order day any of ``rows``' labels looks at, from the rows' own as-of dates."""
    return {d + dt.timedelta(days=i) for d in set(rows["as_of_date"]) for i in range(horizon)}


def test_holdout_label_window_shares_no_day_with_training_or_early_stopping(
    data: TrainingData,
) -> None:
    train, valid, hold = (data.period(p) for p in ("train", "validation", "holdout"))
    train_days, valid_days, hold_days = (label_days(r, 30) for r in (train, valid, hold))
    assert not hold_days & (train_days | valid_days)
    assert not valid_days & train_days
    assert max(hold_days) < SCORE_DATE  # the holdout's outcome is known by the score date
    assert len(set(train["as_of_date"])) == 6 and not train.empty


def test_a_retrain_with_another_seed_is_not_promoted(scenario: dict[str, Any]) -> None:
    r5 = scenario["r5"]
    assert r5.champion_version == scenario["r4"].version
    comparison = r5.decision.comparison
    assert comparison is not None and comparison.primary.metric == "roc_auc"
    assert comparison.primary.low <= 0.002 and "lower bound" in r5.decision.reason
    assert not r5.decision.promote
    assert scenario["aliases_after_r5"] == (scenario["r4"].version, r5.version)


def test_a_challenger_with_an_informative_feature_more_is_promoted(
    scenario: dict[str, Any],
) -> None:
    r6 = scenario["r6"]
    comparison = r6.decision.comparison
    assert comparison is not None and comparison.primary.low > 0.002
    assert r6.decision.promote, r6.decision.reason


def test_first_model_beats_both_baselines_and_becomes_champion(scenario: dict[str, Any]) -> None:
    r1 = scenario["r1"]
    assert r1.decision.promote, r1.decision.reason
    assert scenario["champion_after_r1"] == r1.version
    for name in ("prior", "recency_frequency", "bg_nbd"):
        assert r1.metrics["roc_auc"] > r1.baselines[name]["roc_auc"], name


def test_rerun_with_same_data_and_seed_gives_same_metrics(scenario: dict[str, Any]) -> None:
    assert scenario["c4"].metrics == scenario["c1"].metrics
    assert scenario["c4"].booster.model_to_string() == scenario["c1"].booster.model_to_string()


def test_deliberately_worse_challenger_is_refused(scenario: dict[str, Any]) -> None:
    rw = scenario["rw"]
    assert rw.decision.verdict == "reject"
    assert rw.metrics["roc_auc"] < scenario["r1"].metrics["roc_auc"]
    champion, challenger = scenario["aliases_after_rw"]
    assert champion == scenario["r1"].version  # the champion did not move
    assert challenger == rw.version  # still shadow-scored as challenger


def test_model_with_broken_signature_is_refused_and_gets_no_alias(
    small: Settings, scenario: dict[str, Any]
) -> None:
    rb = scenario["rb"]
    assert rb.decision.verdict == "invalid"
    assert "signature" in rb.decision.reason
    assert scenario["aliases_after_rb"] == scenario["aliases_after_rw"]
    client = configure_mlflow(small)
    assert client.get_model_version(MODEL, rb.version).tags["validation"] == "failed"


def test_better_challenger_is_promoted_over_a_worse_champion(scenario: dict[str, Any]) -> None:
    r4 = scenario["r4"]
    assert r4.champion_version == scenario["rw"].version
    assert r4.champion_metrics is not None
    assert r4.metrics["roc_auc"] > r4.champion_metrics["roc_auc"]
    assert r4.decision.promote, r4.decision.reason
    assert scenario["aliases_after_r4"] == (r4.version, None)


def test_every_decision_is_queryable_in_delta(
    spark: Any, small: Settings, scenario: dict[str, Any]
) -> None:
    rows = (
        read_table(spark, small, GATE_DECISIONS)
        .where(F.col("model_name") == MODEL)
        .orderBy(F.col("candidate_version").cast("int"))
        .collect()
    )
    expected = [scenario[k] for k in ("r1", "rw", "rb", "r4")]
    assert [(r.candidate_version, r.verdict) for r in rows[:4]] == [
        (e.version, e.decision.verdict) for e in expected
    ]
    last = rows[3]
    assert last.champion_version == scenario["rw"].version
    assert last.candidate_roc_auc == pytest.approx(scenario["r4"].metrics["roc_auc"])
    assert last.baseline_recency_frequency_roc_auc == pytest.approx(
        scenario["r4"].baselines["recency_frequency"]["roc_auc"]
    )
    logged = json.loads(last.metrics_json)
    assert logged["reason"] == scenario["r4"].decision.reason
    interval = scenario["r4"].decision.comparison.primary
    assert logged["comparison"]["primary"]["low"] == pytest.approx(interval.low)
    assert logged["comparison"]["primary"]["resamples"] == small.gate.bootstrap_resamples


def test_decision_and_evaluation_are_logged_in_mlflow(
    small: Settings, scenario: dict[str, Any]
) -> None:
    client = configure_mlflow(small)
    r4 = scenario["r4"]
    run = client.get_run(r4.run_id)
    assert run.data.tags["gate.verdict"] == "promote"
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(r4.metrics["roc_auc"])
    assert "baseline_recency_frequency_lift_top_decile" in run.data.metrics
    interval = r4.decision.comparison.primary
    assert run.data.metrics["gate_roc_auc_diff_low"] == pytest.approx(interval.low)
    assert run.data.metrics["gate_bootstrap_resamples"] == small.gate.bootstrap_resamples
    assert run.data.tags["training.holdout_label_window"] == "1998-01-02..1998-01-31"
    decision = mlflow.artifacts.load_dict(f"runs:/{r4.run_id}/gate/decision.json")
    assert (
        decision["verdict"] == "promote" and decision["champion_version"] == scenario["rw"].version
    )
    listed = {f.path for d in ("evaluation", "config") for f in client.list_artifacts(r4.run_id, d)}
    assert {"evaluation/calibration.png", "evaluation/feature_importance.csv"} <= listed
    assert "config/definition.json" in listed
    info = mlflow.models.get_model_info(f"models:/{MODEL}/{r4.version}")
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert info.saved_input_example_info is not None


def test_lineage_tags_point_at_a_delta_version_that_time_travels(
    spark: Any, small: Settings, scenario: dict[str, Any]
) -> None:
    tags = configure_mlflow(small).get_run(scenario["r1"].run_id).data.tags
    assert tags["lineage.silver.orders.path"] == table_path(small, SILVER_ORDERS)
    version = int(tags["lineage.silver.orders.version"])
    travelled = read_table(spark, small, SILVER_ORDERS, version=version)
    assert travelled.count() == int(tags["lineage.silver.orders.rows"])
    assert tags["code.commit"] and tags["training.holdout_as_of_date"] == "1998-01-02"


def test_registered_champion_loads_for_scoring(small: Settings, scenario: dict[str, Any]) -> None:
    r4 = scenario["r4"]
    booster = load_booster(model_name=MODEL, version=r4.version)
    assert booster.feature_name() == list(FEATURE_NAMES)
    holdout = scenario["c4"].holdout
    assert booster.predict(holdout[booster.feature_name()].head(50)) == pytest.approx(
        scenario["c4"].scores[:50]
    )


def test_calibration_and_learning_curve_are_logged_and_recorded(
    spark: Any, small: Settings, data: TrainingData, scenario: dict[str, Any]
) -> None:
    r4, c4 = scenario["r4"], scenario["c4"]
    run = configure_mlflow(small).get_run(r4.run_id)
    assert run.data.params["calibration_method"] == c4.calibration.method
    assert run.data.metrics["validation_calibration_error_before"] == pytest.approx(
        c4.calibration.validation_error_before
    )
    # The curve's two points: all the training rows, and half the customers refitted.
    train_rows = len(data.period("train"))
    assert run.data.metrics["learning_curve_full_rows"] == train_rows
    assert 0.4 * train_rows < run.data.metrics["learning_curve_half_rows"] < 0.6 * train_rows
    assert 0.6 < run.data.metrics["learning_curve_half_roc_auc"] < 1.0
    curve = mlflow.artifacts.load_dict(f"runs:/{r4.run_id}/evaluation/reliability_curve.json")
    assert sum(b["rows"] for b in curve["holdout"]) == len(c4.holdout)
    row = (
        read_table(spark, small, GATE_DECISIONS)
        .where((F.col("model_name") == MODEL) & (F.col("candidate_version") == r4.version))
        .first()
    )
    recorded = json.loads(row.metrics_json)["calibration"]
    assert recorded["method"] == c4.calibration.method
    assert recorded["holdout_error"] == pytest.approx(r4.metrics["calibration_error"])
    assert [b["rows"] for b in recorded["holdout_curve"]] == [b["rows"] for b in curve["holdout"]]


def test_a_calibrated_model_is_what_the_registry_serves(
    small: Settings, data: TrainingData
) -> None:
    definition = primary_definition(small)
    plain = small.model_copy(
        update={"model": small.model.model_copy(update={"calibration": "never"})}
    )
    forced = small.model_copy(
        update={"model": small.model.model_copy(update={"calibration": "always"})}
    )
    raw = fit_candidate(data, definition=definition, settings=plain)
    scaled = fit_candidate(data, definition=definition, settings=forced)
    assert raw.calibration.method == "none" and scaled.calibration.method == "platt"
    x = raw.inputs
    # The same trees, the raw score mapped by the logged Platt parameters, and the AUC unchanged.
    a, b = scaled.calibration.slope, scaled.calibration.intercept
    assert scaled.booster.predict(x, raw_score=True) == pytest.approx(
        a * raw.booster.predict(x, raw_score=True) + b, abs=1e-9
    )
    assert scaled.metrics["roc_auc"] == pytest.approx(raw.metrics["roc_auc"], abs=1e-12)
    assert scaled.metrics["log_loss"] != raw.metrics["log_loss"]
