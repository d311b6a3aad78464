"""The gate's rules, on metric dictionaries (pure: no MLflow, no Spark)."""

from __future__ import annotations

import math

import pytest

from jobs.training.bootstrap import Comparison, Interval
from jobs.training.gate import decide
from schemas.settings import GateSettings

pytestmark = pytest.mark.unit

BASELINES = {"prior": {"roc_auc": 0.5}, "recency_frequency": {"roc_auc": 0.78}}
GATE = GateSettings(min_auc=0.55, min_auc_gain=0.0, max_log_loss_increase=0.0)


def metrics(auc: float, loss: float) -> dict[str, float]:
    return {"roc_auc": auc, "log_loss": loss}


def interval(metric: str, low: float, high: float) -> Interval:
    return Interval(
        metric=metric,
        estimate=(low + high) / 2,
        low=low,
        high=high,
        confidence=0.95,
        resamples=1000,
        rows=1000,
    )


def versus(gain: tuple[float, float], loss: tuple[float, float] = (-0.01, 0.0)) -> Comparison:
    """Intervals of challenger minus champion: AUC gain, then log loss change."""
    return Comparison(primary=interval("roc_auc", *gain), secondary=interval("log_loss", *loss))


def test_first_model_that_beats_every_baseline_is_promoted() -> None:
    decision = decide(candidate=metrics(0.80, 0.2), champion=None, baselines=BASELINES, gate=GATE)
    assert decision.promote and decision.verdict == "promote"


def test_first_model_that_does_not_beat_recency_frequency_is_refused() -> None:
    decision = decide(candidate=metrics(0.77, 0.2), champion=None, baselines=BASELINES, gate=GATE)
    assert not decision.promote
    assert "recency_frequency" in decision.reason


def judge_binary(comparison: Comparison, gate: GateSettings = GATE) -> tuple[bool, str]:
    d = decide(
        candidate=metrics(0.81, 0.19),
        champion=metrics(0.80, 0.20),
        baselines=BASELINES,
        gate=gate,
        comparison=comparison,
    )
    assert d.comparison is comparison  # the decision carries its intervals
    return d.promote, d.reason


def test_a_gain_whose_interval_clears_the_margin_is_promoted() -> None:
    promoted, reason = judge_binary(versus((0.004, 0.016)))
    assert promoted, reason
    assert "[+0.0040, +0.0160]" in reason


def test_a_gain_within_the_noise_keeps_the_champion() -> None:
    # The point estimate is a gain, but the interval reaches below zero.
    promoted, reason = judge_binary(versus((-0.001, 0.009)))
    assert not promoted and "lower bound does not exceed" in reason
    promoted, _ = judge_binary(versus((-0.02, -0.01)))
    assert not promoted


def test_a_tie_keeps_the_champion() -> None:
    assert not judge_binary(versus((0.0, 0.0)))[0]


def test_significantly_worse_log_loss_is_refused_a_noisy_one_is_not() -> None:
    promoted, reason = judge_binary(versus((0.01, 0.02), loss=(0.001, 0.01)))
    assert not promoted and "log loss significantly worse" in reason
    assert judge_binary(versus((0.01, 0.02), loss=(-0.001, 0.01)))[0]


def test_configured_auc_margin_applies_to_the_lower_bound() -> None:
    assert judge_binary(versus((0.004, 0.016)), GateSettings(min_auc_gain=0.002))[0]
    assert not judge_binary(versus((0.004, 0.016)), GateSettings(min_auc_gain=0.005))[0]


def test_the_default_margin_is_above_zero() -> None:
    assert GateSettings().min_auc_gain > 0 and GateSettings().min_rmse_reduction > 0


def test_a_champion_without_intervals_is_an_error() -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        decide(
            candidate=metrics(0.81, 0.19),
            champion=metrics(0.80, 0.20),
            baselines=BASELINES,
            gate=GATE,
        )


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
    def judge(
        reduction: tuple[float, float], gini: tuple[float, float], gate: GateSettings = GATE
    ) -> tuple[bool, str]:
        d = decide(
            task="regression",
            candidate=spend(36.0, 0.78),
            champion=spend(37.0, 0.77),
            baselines=REG_BASELINES,
            gate=gate,
            comparison=Comparison(
                primary=interval("rmse_reduction", *reduction),
                secondary=interval("gini", *gini),
            ),
        )
        return d.promote, d.reason

    assert judge((0.01, 0.04), (-0.01, 0.02))[0]
    promoted, reason = judge((0.0, 0.0), (0.0, 0.01))  # a tie on RMSE keeps the champion
    assert not promoted and "RMSE reduction" in reason
    promoted, reason = judge((-0.04, 0.01), (0.0, 0.03))  # within the noise
    assert not promoted and "lower bound does not exceed" in reason
    promoted, reason = judge((0.01, 0.04), (-0.09, -0.05))
    assert not promoted and "Gini significantly lower" in reason
    assert judge((0.01, 0.04), (-0.09, -0.05), GateSettings(max_gini_decrease=0.1))[0]
    assert not judge((0.01, 0.04), (0.0, 0.01), GateSettings(min_rmse_reduction=0.05))[0]


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
