"""Calibration folded into the trees: exact, rank-preserving, applied only when it is needed,
and served as such by the compiled batch scorer; the learning curve's half of the customers."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from jobs.scoring.compiled_trees import load_predictor
from jobs.training.calibration import calibrate, fold_platt, platt_parameters
from jobs.training.metrics import expected_calibration_error
from jobs.training.train import half_customers, learning_curve

pytestmark = pytest.mark.unit


def _draw(seed: int, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    logit = 1.5 * x["a"] - x["b"] - 2.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return x, y


def _booster(*, scale_pos_weight: float = 1.0, seed: int = 0) -> lgb.Booster:
    x, y = _draw(seed, 20_000)
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "verbosity": -1,
        "seed": 1,
        "num_threads": 1,
        "scale_pos_weight": scale_pos_weight,
    }
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=60)


def test_folding_gives_the_affine_raw_score_exactly() -> None:
    booster = _booster()
    x, _ = _draw(5, 3_000)
    raw = booster.predict(x, raw_score=True)
    folded = fold_platt(booster, slope=0.7, intercept=-1.3)
    assert np.abs(folded.predict(x, raw_score=True) - (0.7 * raw - 1.3)).max() < 1e-9
    expected = 1 / (1 + np.exp(-(0.7 * raw - 1.3)))
    assert np.abs(folded.predict(x) - expected).max() < 1e-12


def test_the_compiled_scorer_serves_the_folded_probabilities(tmp_path: Path) -> None:
    folded = fold_platt(_booster(), slope=0.5, intercept=0.25)
    x, _ = _draw(6, 2_000)
    predictor = load_predictor(
        folded.model_to_string(), cache_dir=str(tmp_path), probe=x.to_numpy()[:50]
    )
    assert predictor.kind == "compiled"  # lleaves agreed with LightGBM on the probe rows
    served = predictor.predict(x.to_numpy(), num_threads=1)
    assert np.abs(served - folded.predict(x)).max() < 1e-9


def test_platt_recovers_known_parameters() -> None:
    rng = np.random.default_rng(3)
    raw = rng.normal(size=200_000)
    y = (rng.random(raw.size) < 1 / (1 + np.exp(-(2.0 * raw - 1.0)))).astype(float)
    slope, intercept = platt_parameters(raw, y)
    assert slope == pytest.approx(2.0, abs=0.05)
    assert intercept == pytest.approx(-1.0, abs=0.05)


def test_an_inflated_model_is_calibrated_and_keeps_its_ranking() -> None:
    booster = _booster(scale_pos_weight=6.0)  # inflates every probability
    valid_x, valid_y = _draw(11, 10_000)
    scaled, calibration = calibrate(
        booster, inputs=valid_x, labels=valid_y, mode="auto", max_error=0.02
    )
    assert calibration.method == "platt"
    assert calibration.validation_error_before > 0.05
    # Judged on rows neither fit saw.
    test_x, test_y = _draw(12, 10_000)
    before, after = booster.predict(test_x), scaled.predict(test_x)
    assert (
        expected_calibration_error(test_y, after)
        < 0.02
        < expected_calibration_error(test_y, before)
    )
    assert roc_auc_score(test_y, after) == pytest.approx(roc_auc_score(test_y, before), abs=1e-12)


@pytest.mark.parametrize(("max_error", "method"), [(0.05, "none"), (0.01, "platt")])
def test_auto_calibrates_only_above_the_threshold(max_error: float, method: str) -> None:
    booster = _booster(scale_pos_weight=1.2)  # validation calibration error about 0.028
    valid_x, valid_y = _draw(21, 10_000)
    out, calibration = calibrate(
        booster, inputs=valid_x, labels=valid_y, mode="auto", max_error=max_error
    )
    assert calibration.method == method
    assert 0.01 < calibration.validation_error_before < 0.05
    assert (out.model_to_string() == booster.model_to_string()) == (method == "none")


@pytest.mark.parametrize(("mode", "method"), [("never", "none"), ("always", "platt")])
def test_the_mode_overrides_the_threshold(mode: str, method: str) -> None:
    booster = _booster(scale_pos_weight=6.0) if mode == "never" else _booster()
    valid_x, valid_y = _draw(31, 5_000)
    out, calibration = calibrate(
        booster,
        inputs=valid_x,
        labels=valid_y,
        mode=mode,  # type: ignore[arg-type]
        max_error=0.02,
    )
    assert calibration.method == method
    assert (out.model_to_string() == booster.model_to_string()) == (method == "none")


def test_half_the_customers_keep_all_their_dates() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(2_000)] * 3,
            "as_of_date": np.repeat([1, 2, 3], 2_000),
            "label": np.tile([0.0, 1.0], 3_000),
        }
    )
    half = half_customers(frame, seed=42)
    per_customer = half.groupby("customer_id")["as_of_date"].nunique()
    assert (per_customer == 3).all()
    assert 900 < per_customer.size < 1_100
    assert half_customers(frame, seed=42).equals(half)
    assert set(half_customers(frame, seed=7)["customer_id"]) != set(half["customer_id"])


def test_the_learning_curve_judges_the_half_on_the_same_holdout() -> None:
    x, y = _draw(41, 8_000)
    train = x.assign(label=y, customer_id=[f"c{i}" for i in range(len(y))])
    hold_x, hold_y = _draw(42, 4_000)
    seen: list[int] = []

    def fit(rows: pd.DataFrame) -> tuple[lgb.Booster, pd.DataFrame]:
        seen.append(len(rows))
        params = {"objective": "binary", "num_leaves": 7, "verbosity": -1, "num_threads": 1}
        data = lgb.Dataset(rows[["a", "b", "c", "d"]], label=rows["label"])
        return lgb.train(params, data, num_boost_round=30), hold_x

    curve = learning_curve(
        fit,
        train=train,
        full_metrics={"roc_auc": 0.9},
        holdout_labels=hold_y,
        task="binary",
        seed=1,
    )
    assert seen == [curve["learning_curve_half_rows"]]
    assert curve["learning_curve_full_rows"] == 8_000
    assert 3_500 < curve["learning_curve_half_rows"] < 4_500
    assert curve["learning_curve_full_roc_auc"] == 0.9
    assert 0.7 < curve["learning_curve_half_roc_auc"] < 1.0
