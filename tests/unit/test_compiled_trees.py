"""Compiled trees: equal to LightGBM, cached between runs, and LightGBM whenever in doubt."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from jobs.scoring.compiled_trees import compile_ahead, load_predictor

pytestmark = pytest.mark.unit


def _booster(*, seed: int, objective: str = "binary") -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3_000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take LightGBM's default branch
    signal = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 3])
    if objective == "binary":
        y = (rng.random(3_000) < 1 / (1 + np.exp(-signal))).astype(float)
    else:  # a spend-like amount: zero-inflated, >= 0
        y = np.where(rng.random(3_000) < 0.7, 0.0, np.exp(signal + 1.0))
    params = {"objective": objective, "num_leaves": 15, "verbosity": -1, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=25)


def _rows(seed: int, n: int = 2_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[rng.random(x.shape) < 0.15] = np.nan
    return x


@pytest.mark.parametrize("objective", ["binary", "tweedie"])
def test_compiled_model_scores_like_lightgbm_and_is_cached(tmp_path: Path, objective: str) -> None:
    booster = _booster(seed=1, objective=objective)
    text = booster.model_to_string()
    x = _rows(2)
    predictor = load_predictor(text, cache_dir=str(tmp_path), probe=x)
    assert predictor.kind == "compiled"
    got = predictor.predict(x, num_threads=2)
    np.testing.assert_allclose(got, booster.predict(x), rtol=0, atol=1e-12)

    (cached,) = tmp_path.glob("*.o")
    stamp = cached.stat().st_mtime_ns
    again = load_predictor(text, cache_dir=str(tmp_path), probe=x)  # loaded, not recompiled
    assert again.kind == "compiled"
    assert cached.stat().st_mtime_ns == stamp
    assert list(tmp_path.glob("*.partial")) == []
    np.testing.assert_array_equal(again.predict(x, num_threads=1), got)


def test_another_model_gets_its_own_compiled_code(tmp_path: Path) -> None:
    first, second = _booster(seed=1), _booster(seed=2)
    assert compile_ahead(first.model_to_string(), cache_dir=str(tmp_path)) == "compiled"
    assert compile_ahead(second.model_to_string(), cache_dir=str(tmp_path)) == "compiled"
    assert len(list(tmp_path.glob("*.o"))) == 2
    x = _rows(3)
    predictor = load_predictor(second.model_to_string(), cache_dir=str(tmp_path), probe=x)
    np.testing.assert_allclose(predictor.predict(x, num_threads=1), second.predict(x), atol=1e-12)


def test_compiled_code_that_disagrees_with_lightgbm_is_not_used(tmp_path: Path) -> None:
    first, second = _booster(seed=1), _booster(seed=2)
    compile_ahead(first.model_to_string(), cache_dir=str(tmp_path))
    compile_ahead(second.model_to_string(), cache_dir=str(tmp_path))
    # Swap the cached object code of the two models: each key now holds the wrong model.
    by_model = {p.read_text(): p.with_suffix(".o") for p in tmp_path.glob("*.txt")}
    a, b = by_model[first.model_to_string()], by_model[second.model_to_string()]
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)

    x = _rows(4)
    predictor = load_predictor(first.model_to_string(), cache_dir=str(tmp_path), probe=x)
    assert predictor.kind == "lightgbm"
    np.testing.assert_array_equal(predictor.predict(x, num_threads=1), first.predict(x))


def test_no_cache_dir_or_unusable_cache_means_lightgbm(tmp_path: Path) -> None:
    booster = _booster(seed=1)
    text, x = booster.model_to_string(), _rows(5)
    assert load_predictor(text, cache_dir=None, probe=x).kind == "lightgbm"
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    predictor = load_predictor(text, cache_dir=str(blocked / "cache"), probe=x)
    assert predictor.kind == "lightgbm"
    np.testing.assert_array_equal(predictor.predict(x, num_threads=1), booster.predict(x))
    assert compile_ahead(text, cache_dir=str(blocked / "cache")) == "lightgbm"
