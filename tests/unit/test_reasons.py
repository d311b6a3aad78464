"""Reasons for a score: the decision-pattern tables against LightGBM's own TreeSHAP."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pytest

from jobs.scoring.reasons import (
    LightGBMExplainer,
    ReasonsPolicy,
    TableExplainer,
    load_explainer,
    reasons_array,
    top_reasons,
)


def _data(rows: int, features: int, *, seed: int) -> np.ndarray:
    """Gaussian features with NaNs, exact zeros and values within LightGBM's zero threshold."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    x[rng.random(x.shape) < 0.02] = 1e-36
    return x


def _model(objective: str, *, zero_as_missing: bool = False, leaves: int = 7) -> lgb.Booster:
    x = _data(6_000, 8, seed=1)
    z = np.nan_to_num(x)
    signal = z[:, 0] + z[:, 1] * z[:, 2] - (z[:, 3] == 0)
    y = (signal > 0).astype(float) if objective == "binary" else np.exp(signal / 2)
    params = {
        "objective": objective,
        "num_leaves": leaves,
        "zero_as_missing": zero_as_missing,
        "verbose": -1,
        "seed": 1,
    }
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=60)


@pytest.mark.parametrize(
    ("objective", "zero_as_missing"),
    [("binary", False), ("binary", True), ("tweedie", False)],
)
def test_tables_equal_pred_contrib_and_add_up_to_the_raw_score(
    objective: str, zero_as_missing: bool
) -> None:
    booster = _model(objective, zero_as_missing=zero_as_missing)
    rows = _data(3_000, 8, seed=2)
    tables = TableExplainer(booster)
    got = tables.contributions(rows)

    want = booster.predict(rows, pred_contrib=True)
    assert got.shape == want.shape == (3_000, 9)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    raw = booster.predict(rows, raw_score=True)
    np.testing.assert_allclose(got.sum(axis=1), raw, rtol=0, atol=1e-9)


def test_tables_survive_pickling_to_the_tasks() -> None:
    booster = _model("binary")
    rows = _data(500, 8, seed=3)
    shipped = pickle.loads(pickle.dumps(TableExplainer(booster)))
    np.testing.assert_allclose(
        shipped.contributions(rows), booster.predict(rows, pred_contrib=True), rtol=0, atol=1e-9
    )


def test_trees_the_tables_cannot_hold_fall_back_to_lightgbm() -> None:
    booster = _model("binary", leaves=31)  # 30 splits a tree: 2**30 patterns
    rows = _data(200, 8, seed=4)
    explainer = load_explainer(booster.model_to_string(), probe=rows)
    assert isinstance(explainer, LightGBMExplainer)
    np.testing.assert_allclose(
        explainer.contributions(rows).sum(axis=1), booster.predict(rows, raw_score=True), atol=1e-9
    )
    assert load_explainer(_model("binary").model_to_string(), probe=rows).kind == "tables"


def test_categorical_splits_fall_back_to_lightgbm() -> None:
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.integers(0, 6, 3_000), rng.normal(size=3_000)]).astype(float)
    y = ((x[:, 0] % 2 == 0) ^ (x[:, 1] > 0)).astype(float)
    data = lgb.Dataset(x, y, categorical_feature=[0])
    booster = lgb.train({"objective": "binary", "verbose": -1}, data, num_boost_round=20)
    explainer = load_explainer(booster.model_to_string(), probe=x[:200])
    assert isinstance(explainer, LightGBMExplainer)
    np.testing.assert_allclose(
        explainer.contributions(x[:200]).sum(axis=1),
        booster.predict(x[:200], raw_score=True),
        atol=1e-9,
    )


def test_top_reasons_are_the_largest_by_size_largest_first() -> None:
    phi = np.array(
        [
            [0.1, -0.5, 0.3, 0.0, 9.0],  # last column: the expected value, never a reason
            [0.2, 0.2, -0.2, 0.01, 0.0],  # a tie in size: lower feature index first
        ]
    )
    values = np.array([[1.0, 2.0, np.nan, 4.0], [5.0, 6.0, 7.0, 8.0]])
    index, contribution, value = top_reasons(phi, values, count=3)
    assert index.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert contribution.tolist() == [[-0.5, 0.3, 0.1], [0.2, 0.2, -0.2]]
    assert np.isnan(value[0, 1]) and value[0, [0, 2]].tolist() == [2.0, 1.0]

    array = reasons_array(
        3,
        explained=np.array([0, 2]),
        index=index,
        contribution=contribution,
        value=value,
        names=["a", "b", "c", "d"],
    )
    listed = array.to_pylist()
    assert listed[1] is None
    assert listed[0] == [
        {"feature": "b", "contribution": -0.5, "value": 2.0},
        {"feature": "c", "contribution": 0.3, "value": None},  # a missing value is null
        {"feature": "a", "contribution": 0.1, "value": 1.0},
    ]
    assert [r["feature"] for r in listed[2]] == ["a", "b", "c"]


def test_the_policy_picks_the_rows_to_explain() -> None:
    scores = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.05])
    assert ReasonsPolicy(mode="all").rows(scores) is None
    assert ReasonsPolicy(mode="off").rows(scores).tolist() == []
    top = ReasonsPolicy(mode="top_share", share=0.3)
    assert top.rows(scores).tolist() == [1, 3, 5]  # 0.9, 0.7, 0.8: the top 30 %
    assert top.label == "top_share:0.3"
    assert ReasonsPolicy(mode="top_share", share=0.01).rows(scores).tolist() == [1]  # at least one
