"""Population stability index between a reference and a current sample."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def population_stability_index(
    reference: ArrayLike, current: ArrayLike, *, bins: int = 10, eps: float = 1e-4
) -> float:
    """PSI over quantile bins of ``reference`` (0: same distribution; > 0.25: large shift).

    Nulls (NaN, None) are a bin of their own: the share of nulls in each sample is
    compared like any other bin, so a feature that goes all-null, or whose null share
    jumps, has a large PSI. Shares are clipped at ``eps`` before the logarithm. An empty
    sample has no share in any bin (every share is ``eps``), so against a non-empty one
    it is a large shift; only when both are empty is the PSI undefined (NaN).
    """
    ref = np.asarray(reference, dtype=float).ravel()
    cur = np.asarray(current, dtype=float).ravel()
    if ref.size == 0 and cur.size == 0:
        return float("nan")
    ref_values, cur_values = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    edges = np.array([-np.inf, np.inf])
    if ref_values.size:
        edges = np.unique(np.quantile(ref_values, np.linspace(0, 1, bins + 1)))
        if edges.size < 2:  # a constant reference: any other value is an infinite shift
            if np.any(cur_values != edges[0]):
                return float("inf")
            edges = np.array([-np.inf, np.inf])
        edges[0], edges[-1] = -np.inf, np.inf
    p = np.clip(_shares(ref, ref_values, edges), eps, None)
    q = np.clip(_shares(cur, cur_values, edges), eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _shares(sample: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of ``sample`` per value bin of ``edges``, then the share of nulls (all 0 if empty)."""
    counts = np.append(np.histogram(values, bins=edges)[0], sample.size - values.size)
    return counts / sample.size if sample.size else np.zeros(counts.size)
