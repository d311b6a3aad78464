"""The online evaluation's statistics on fixtures whose answers are known by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from jobs.monitoring.online_eval import evaluate_group, evaluate_served, weighted_lift
from jobs.monitoring.retrain_triggers import OnlineQuality, online_problems
from jobs.training import top_decile_lift
from schemas.settings import OnlineEvalSettings, RetrainSettings

CFG = OnlineEvalSettings(resamples=200, seed=3)


def test_auc_is_the_share_of_positive_negative_pairs_ranked_right() -> None:
    # Positives 0.9, 0.6, 0.4; negatives 0.8, 0.3, 0.1: 0.9 beats 3, 0.6 and 0.4 beat 2 -> 7/9.
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.6, 0.3, 0.4, 0.1])
    out = evaluate_group(labels, scores, cfg=CFG)
    assert out["auc"] == pytest.approx(7 / 9)
    assert out["customers"] == 6 and out["positives"] == 3 and out["base_rate"] == 0.5
    assert out["mean_score"] == pytest.approx(3.1 / 6)
    assert out["observed_to_expected"] == pytest.approx(0.5 / (3.1 / 6))
    assert out["auc_low"] <= out["auc"] <= out["auc_high"]


def test_a_tie_counts_one_half() -> None:
    out = evaluate_group(np.array([1, 0]), np.array([0.5, 0.5]), cfg=CFG)
    assert out["auc"] == 0.5


def test_one_class_only_has_no_auc_but_a_calibration() -> None:
    out = evaluate_group(np.zeros(20), np.full(20, 0.1), cfg=CFG)
    assert math.isnan(out["auc"]) and math.isnan(out["auc_low"])
    assert out["observed_to_expected"] == 0.0 and out["positives"] == 0


def test_weighted_lift_with_unit_weights_is_the_exact_top_decile_lift() -> None:
    rng = np.random.default_rng(7)
    for n in (7, 10, 95, 1_003):
        scores = np.round(rng.random(n), 1)  # many ties at the decile's boundary
        labels = (rng.random(n) < scores).astype(float)
        got = weighted_lift(labels, scores)(np.ones((1, n)))[0]
        assert got == pytest.approx(top_decile_lift(labels, scores)), n


def test_the_interval_narrows_with_more_customers() -> None:
    rng = np.random.default_rng(1)

    def width(n: int) -> float:
        scores = rng.random(n)
        labels = (rng.random(n) < scores).astype(float)
        out = evaluate_group(labels, scores, cfg=CFG)
        return out["auc_high"] - out["auc_low"]

    assert width(4_000) < width(200) / 2


def test_served_groups_are_split_by_arm_version_and_source() -> None:
    frame = pd.DataFrame(
        {
            "model_name": ["m"] * 6,
            "model_version": ["3", "3", "4", "4", "3", None],
            "experiment": ["e"] * 6,
            "arm": ["champion", "champion", "b", "b", "champion", "champion"],
            "source": ["batch", "batch", "batch", "batch", "prior", "default"],
            "score": [0.9, 0.1, 0.2, 0.8, 0.3, 0.3],
            "label": [1, 0, 1, 0, 1, 0],
            "answers": [2, 1, 1, 1, 1, 1],
        }
    )
    rows = evaluate_served(frame, served_date=dt.date(2024, 1, 1), horizon_days=30, cfg=CFG)
    by = {(r["arm"], r["model_version"], r["source"]): r for r in rows}
    assert set(by) == {
        ("champion", "3", "batch"),
        ("b", "4", "batch"),
        ("champion", "3", "prior"),
        ("champion", None, "default"),
    }
    assert by[("champion", "3", "batch")]["auc"] == 1.0
    assert by[("champion", "3", "batch")]["answers"] == 3
    assert by[("b", "4", "batch")]["auc"] == 0.0


def _online(auc: float, low: float, high: float, customers: int = 1_000) -> OnlineQuality:
    return OnlineQuality(
        served_date=dt.date(2024, 1, 1),
        model_version="3",
        customers=customers,
        auc=auc,
        auc_low=low,
        auc_high=high,
    )


def test_the_online_floor_needs_the_whole_interval_below_it() -> None:
    limits = RetrainSettings(online_auc_min=0.6)
    below = _online(0.52, 0.50, 0.55)
    assert online_problems(below, limits, champion_version="3", min_customers=500)
    straddles = _online(0.58, 0.55, 0.61)
    assert online_problems(straddles, limits, champion_version="3", min_customers=500) == []
    small = _online(0.52, 0.50, 0.55, customers=100)
    assert online_problems(small, limits, champion_version="3", min_customers=500) == []
    replaced = online_problems(below, limits, champion_version="4", min_customers=500)
    assert replaced == []
    off = RetrainSettings(online_auc_min=0.0)
    assert online_problems(below, off, champion_version="3", min_customers=500) == []
