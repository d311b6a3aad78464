"""The gate's rules, on metric dictionaries (pure: no MLflow, no Spark)."""

from __future__ import annotations

import math

import pytest

from jobs.training.gate import decide
from schemas.settings import GateSettings

pytestmark = pytest.mark.unit

BASELINES = {"prior": {"roc_auc": 0.5}, "recency_frequency": {"roc_auc": 0.78}}
GATE = GateSettings(min_auc=0.55, min_auc_gain=0.0, max_log_loss_increase=0.0)


def metrics(auc: float, loss: float) -> dict[str, float]:
    return {"roc_auc": auc, "log_loss": loss}


def test_first_model_that_beats_every_baseline_is_promoted() -> None:
    decision = decide(candidate=metrics(0.80, 0.2), champion=None, baselines=BASELINES, gate=GATE)
    assert decision.promote and decision.verdict == "promote"


def test_first_model_that_does_not_beat_recency_frequency_is_refused() -> None:
    decision = decide(candidate=metrics(0.77, 0.2), champion=None, baselines=BASELINES, gate=GATE)
    assert not decision.promote
    assert "recency_frequency" in decision.reason


def test_better_challenger_is_promoted_and_worse_one_refused() -> None:
    champion = metrics(0.80, 0.20)
    better = decide(
        candidate=metrics(0.81, 0.19), champion=champion, baselines=BASELINES, gate=GATE
    )
    worse = decide(candidate=metrics(0.79, 0.19), champion=champion, baselines=BASELINES, gate=GATE)
    assert better.promote
    assert not worse.promote and "AUC gain -0.0100" in worse.reason


def test_a_tie_keeps_the_champion() -> None:
    same = metrics(0.80, 0.20)
    decision = decide(candidate=same, champion=same, baselines=BASELINES, gate=GATE)
    assert not decision.promote


def test_log_loss_increase_beyond_margin_is_refused() -> None:
    decision = decide(
        candidate=metrics(0.82, 0.25), champion=metrics(0.80, 0.20), baselines=BASELINES, gate=GATE
    )
    assert not decision.promote and "log loss" in decision.reason


def test_configured_auc_margin_applies() -> None:
    strict = GateSettings(min_auc_gain=0.02)
    decision = decide(
        candidate=metrics(0.81, 0.19),
        champion=metrics(0.80, 0.20),
        baselines=BASELINES,
        gate=strict,
    )
    assert not decision.promote


def test_validation_problems_are_never_promoted_even_with_great_metrics() -> None:
    decision = decide(
        candidate=metrics(0.99, 0.01),
        champion=None,
        baselines=BASELINES,
        gate=GATE,
        problems=["signature inputs differ"],
    )
    assert not decision.promote
    assert decision.verdict == "invalid" and "signature" in decision.reason


@pytest.mark.parametrize(
    "candidate", [metrics(math.nan, 0.2), metrics(0.9, math.nan), metrics(0.54, 0.2)]
)
def test_nan_or_below_floor_metrics_are_refused(candidate: dict[str, float]) -> None:
    decision = decide(candidate=candidate, champion=None, baselines={}, gate=GATE)
    assert not decision.promote


REG_BASELINES = {"prior": {"rmse": 49.0, "gini": 0.0}, "monetary_365d": {"rmse": 45.0}}


def spend(rmse: float, gini: float) -> dict[str, float]:
    return {"rmse": rmse, "gini": gini}


def test_regression_first_model_must_beat_every_baseline_on_rmse() -> None:
    good = decide(
        task="regression",
        candidate=spend(37.0, 0.77),
        champion=None,
        baselines=REG_BASELINES,
        gate=GATE,
    )
    assert good.promote, good.reason
    bad = decide(
        task="regression",
        candidate=spend(46.0, 0.77),
        champion=None,
        baselines=REG_BASELINES,
        gate=GATE,
    )
    assert not bad.promote and "baseline monetary_365d" in bad.reason


def test_regression_challenger_needs_lower_rmse_and_no_worse_ranking() -> None:
    champion = spend(37.0, 0.77)

    def judge(candidate: dict[str, float], gate: GateSettings = GATE) -> tuple[bool, str]:
        d = decide(
            task="regression",
            candidate=candidate,
            champion=champion,
            baselines=REG_BASELINES,
            gate=gate,
        )
        return d.promote, d.reason

    assert judge(spend(36.0, 0.78))[0]
    promoted, reason = judge(spend(37.0, 0.78))  # a tie on RMSE keeps the champion
    assert not promoted and "RMSE reduction" in reason
    promoted, reason = judge(spend(38.0, 0.80))
    assert not promoted and "RMSE reduction -2.70%" in reason
    promoted, reason = judge(spend(36.0, 0.70))
    assert not promoted and "Gini change -0.0700" in reason
    assert judge(spend(36.0, 0.70), GateSettings(max_gini_decrease=0.1))[0]
    assert not judge(spend(36.5, 0.78), GateSettings(min_rmse_reduction=0.05))[0]


def test_regression_nan_metrics_and_validation_problems_are_refused() -> None:
    nan = decide(
        task="regression", candidate=spend(math.nan, 0.5), champion=None, baselines={}, gate=GATE
    )
    assert not nan.promote and "NaN" in nan.reason
    invalid = decide(
        task="regression",
        candidate=spend(1.0, 0.99),
        champion=None,
        baselines=REG_BASELINES,
        gate=GATE,
        problems=["3 holdout predictions are negative amounts"],
    )
    assert invalid.verdict == "invalid"
