from __future__ import annotations

import numpy as np
import pytest

from jobs.monitoring.psi import population_stability_index

pytestmark = pytest.mark.unit


def test_same_distribution_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    assert population_stability_index(rng.normal(size=50_000), rng.normal(size=50_000)) < 0.01


def test_shifted_distribution_is_large() -> None:
    rng = np.random.default_rng(1)
    psi = population_stability_index(rng.normal(size=20_000), rng.normal(1.0, size=20_000))
    assert psi > 0.25


def test_constant_and_empty_inputs() -> None:
    assert population_stability_index(np.ones(10), np.ones(5)) == 0.0
    assert population_stability_index(np.ones(10), np.zeros(5)) == float("inf")
    # One empty sample against values is a large shift; only two empty samples are undefined.
    assert population_stability_index(np.array([]), np.ones(3)) > 0.25
    assert population_stability_index(np.ones(3), np.array([])) > 0.25
    assert np.isnan(population_stability_index(np.array([]), np.array([])))


def test_a_feature_that_goes_all_null_is_a_large_shift() -> None:
    values = np.random.default_rng(2).normal(size=5_000)
    nan, none = np.full(5_000, np.nan), [None] * 5_000
    assert population_stability_index(values, nan) > 0.25
    assert population_stability_index(values, none) > 0.25
    assert population_stability_index(nan, values) > 0.25  # and back
    assert population_stability_index(np.ones(100), nan) > 0.25  # a constant reference too
    assert population_stability_index(nan, none) == 0.0  # null both nights: no shift


def test_a_jump_in_the_null_share_is_a_large_shift() -> None:
    rng = np.random.default_rng(3)
    before, after = rng.normal(size=20_000), rng.normal(size=20_000)
    before[:200] = np.nan  # 1% nulls
    after[:8_000] = np.nan  # 40% nulls, the values otherwise from the same distribution
    assert population_stability_index(before, after) > 0.25
    same_share = rng.normal(size=20_000)
    same_share[:200] = np.nan
    assert population_stability_index(before, same_share) < 0.01


def test_the_null_bin_is_clipped_like_the_others() -> None:
    values = np.arange(1_000, dtype=float)
    eps = 1e-4
    # All null against no nulls: the null bin (1 vs eps) and every value bin (eps vs 1/10).
    expected = (1 - eps) * np.log(1 / eps) + 10 * (eps - 0.1) * np.log(eps / 0.1)
    assert population_stability_index(values, np.full(10, np.nan), eps=eps) == pytest.approx(
        expected
    )
