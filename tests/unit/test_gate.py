"""The gate's rules, on metric dictionaries (pure: no MLflow, no Spark)."""

from __future__ import annotations

import math

import pytest

from jobs.gate import decide
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
