"""Paired bootstrap intervals for challenger minus champion on identical holdout rows.

Each resample draws a Poisson(1) weight per holdout row (one row per customer: the
holdout is one as-of date), the same weights for both models, so the interval is of
the paired difference and the noise both models share cancels. Metrics are computed
on weighted rows, exactly: AUC from tie groups of the scores (ties count one half,
as in scikit-learn), log loss and RMSE as weighted means, the normalised Gini from
the weighted Lorenz curve with ties as blocks (as ``metrics_regression``). Seeded:
the same rows and scores give the same interval. Percentile intervals.

Binary: primary ``roc_auc`` (challenger - champion, higher is better), secondary
``log_loss`` (challenger - champion, lower is better). Regression: primary
``rmse_reduction`` ((champion - challenger) / champion RMSE, higher is better),
secondary ``gini`` (challenger - champion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from schemas.models import ModelTask

# Weights drawn per chunk of resamples: chunk x rows stays near this many numbers.
_CHUNK_CELLS = 4_000_000

Statistic = Callable[[np.ndarray], np.ndarray]  # weights (resamples, rows) -> (resamples,)


@dataclass(frozen=True, kw_only=True)
class Interval:
    """Challenger minus champion on one metric: the full-holdout estimate and its interval."""

    metric: str
    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int
    rows: int

    def text(self) -> str:
        return (
            f"{self.metric} {self.estimate:+.4f} "
            f"[{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%}, {self.resamples} resamples)"
        )

    def as_json(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The gate's two intervals: the primary metric and the secondary one."""

    primary: Interval
    secondary: Interval

    def as_json(self) -> dict[str, object]:
        return {"primary": self.primary.as_json(), "secondary": self.secondary.as_json()}

    def metrics(self) -> dict[str, float]:
        """Flat ``gate_<metric>_diff_estimate|low|high`` numbers (for MLflow)."""
        out: dict[str, float] = {}
        for iv in (self.primary, self.secondary):
            for part in ("estimate", "low", "high"):
                out[f"gate_{iv.metric}_diff_{part}"] = float(getattr(iv, part))
        out["gate_bootstrap_resamples"] = float(self.primary.resamples)
        out["gate_bootstrap_confidence"] = self.primary.confidence
        return out


def _groups(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Index of each row's tie group, groups in ascending value order, and the group count."""
    uniq, inverse = np.unique(values, return_inverse=True)
    return inverse.ravel(), len(uniq)


def _grouped_sums(inverse: np.ndarray, n_groups: int, weights: np.ndarray) -> np.ndarray:
    """Per resample (row of ``weights``), the weight summed over each tie group."""
    k = weights.shape[0]
    ids = (inverse[None, :] + n_groups * np.arange(k)[:, None]).ravel()
    sums = np.bincount(ids, weights=weights.ravel(), minlength=k * n_groups)
    return sums.reshape(k, n_groups)


def weighted_auc(y: np.ndarray, scores: np.ndarray) -> Statistic:
    """ROC AUC of ``scores`` on weighted rows (ties count one half)."""
    inverse, n_groups = _groups(scores)
    positive = (y > 0).astype(float)

    def statistic(w: np.ndarray) -> np.ndarray:
        pos = _grouped_sums(inverse, n_groups, w * positive)
        neg = _grouped_sums(inverse, n_groups, w * (1.0 - positive))
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        wins = (pos * (below + 0.5 * neg)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, wins / pairs, np.nan)

    return statistic


def weighted_log_loss(y: np.ndarray, scores: np.ndarray) -> Statistic:
    p = np.clip(scores, 1e-7, 1 - 1e-7)
    losses = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    return lambda w: (w @ losses) / w.sum(axis=1)


def weighted_rmse(y: np.ndarray, predictions: np.ndarray) -> Statistic:
    squared = (predictions - y) ** 2
    return lambda w: np.sqrt((w @ squared) / w.sum(axis=1))


def _lorenz_area(y: np.ndarray, order_by: np.ndarray) -> Statistic:
    inverse, n_groups = _groups(order_by)

    def statistic(w: np.ndarray) -> np.ndarray:
        mass = np.cumsum(_grouped_sums(inverse, n_groups, w), axis=1)
        amount = np.cumsum(_grouped_sums(inverse, n_groups, w * y), axis=1)
        x = np.concatenate([np.zeros((len(w), 1)), mass / mass[:, -1:]], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.concatenate([np.zeros((len(w), 1)), amount / amount[:, -1:]], axis=1)
        return np.sum(np.diff(x, axis=1) * (share[:, 1:] + share[:, :-1]) / 2.0, axis=1)

    return statistic


def weighted_gini(y: np.ndarray, predictions: np.ndarray) -> Statistic:
    """Normalised Gini of the amounts ranked by ``predictions`` on weighted rows."""
    model, best = _lorenz_area(y, predictions), _lorenz_area(y, y)
    return lambda w: (1.0 - 2.0 * model(w)) / (1.0 - 2.0 * best(w))


def paired_interval(
    metric: str,
    difference: Callable[[np.ndarray], np.ndarray],
    *,
    rows: int,
    resamples: int,
    confidence: float,
    seed: int,
) -> Interval:
    """Percentile interval of ``difference`` (weights -> one value per resample)."""
    return bootstrap_intervals(
        {metric: difference}, rows=rows, resamples=resamples, confidence=confidence, seed=seed
    )[metric]


def bootstrap_intervals(
    statistics: dict[str, Callable[[np.ndarray], np.ndarray]],
    *,
    rows: int,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, Interval]:
    """Percentile intervals of several statistics over the same resamples: each chunk of
    Poisson weights is drawn once and given to every statistic (the same intervals as one
    ``paired_interval`` per statistic with this seed, for one draw instead of one each)."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(rows, 1))
    values: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    left = resamples
    while left > 0:
        k = min(chunk, left)
        weights = rng.poisson(1.0, size=(k, rows)).astype(float)
        for name, statistic in statistics.items():
            values[name].append(statistic(weights))
        left -= k
    ones = np.ones((1, rows))
    out = {}
    for name, statistic in statistics.items():
        drawn = np.concatenate(values[name])
        drawn = drawn[np.isfinite(drawn)]
        if len(drawn) == 0:
            low = high = float("nan")
        else:
            low, high = (
                float(q) for q in np.quantile(drawn, [(1 - confidence) / 2, (1 + confidence) / 2])
            )
        out[name] = Interval(
            metric=name,
            estimate=float(statistic(ones)[0]),
            low=low,
            high=high,
            confidence=confidence,
            resamples=resamples,
            rows=rows,
        )
    return out


def compare(
    task: ModelTask,
    y: np.ndarray,
    *,
    candidate: np.ndarray,
    champion: np.ndarray,
    resamples: int,
    confidence: float,
    seed: int,
) -> Comparison:
    """The gate's paired intervals for ``candidate`` against ``champion`` on the rows ``y``."""
    y = np.asarray(y, dtype=float)
    cand = np.nan_to_num(np.asarray(candidate, dtype=float), nan=0.5 if task == "binary" else 0.0)
    champ = np.nan_to_num(np.asarray(champion, dtype=float), nan=0.5 if task == "binary" else 0.0)
    if not len(y) == len(cand) == len(champ):
        raise ValueError(f"{len(y)} labels, {len(cand)} candidate and {len(champ)} champion scores")
    interval = partial(
        paired_interval, rows=len(y), resamples=resamples, confidence=confidence, seed=seed
    )
    if task == "regression":
        rmse_c, rmse_h = weighted_rmse(y, cand), weighted_rmse(y, champ)
        gini_c, gini_h = weighted_gini(y, cand), weighted_gini(y, champ)

        def reduction(w: np.ndarray) -> np.ndarray:
            base = rmse_h(w)
            with np.errstate(invalid="ignore", divide="ignore"):
                return (base - rmse_c(w)) / base

        return Comparison(
            primary=interval("rmse_reduction", reduction),
            secondary=interval("gini", lambda w: gini_c(w) - gini_h(w)),
        )
    auc_c, auc_h = weighted_auc(y, cand), weighted_auc(y, champ)
    loss_c, loss_h = weighted_log_loss(y, cand), weighted_log_loss(y, champ)
    return Comparison(
        primary=interval("roc_auc", lambda w: auc_c(w) - auc_h(w)),
        secondary=interval("log_loss", lambda w: loss_c(w) - loss_h(w)),
    )
