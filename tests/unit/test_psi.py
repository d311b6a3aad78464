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
    assert np.isnan(population_stability_index(np.array([]), np.ones(3)))
