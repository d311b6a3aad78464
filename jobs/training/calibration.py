"""Calibration of a binary booster on the validation date, folded into its trees.

The booster optimises plain log loss, so its probabilities are usually close to the
observed rates; when they are not (a cohort shift between the training dates and the
validation date, an objective that inflates them), the website would show a wrong
"chance of ordering". :func:`calibrate` measures the expected calibration error on
the validation period (never the holdout, which stays clean for the gate) and, when it
exceeds ``model.max_calibration_error`` (or ``model.calibration`` is ``always``), fits
Platt scaling ``p = sigmoid(a * raw + b)`` on the validation raw scores.

Why Platt and not isotonic: it is strictly increasing, so every ranking metric the gate
reads (ROC AUC, lift) is exactly unchanged, and it can be folded into the model itself:
the raw score is the sum of the trees' leaf values, so multiplying every leaf by ``a``
and adding ``b`` to every leaf of the first tree gives ``a * raw + b`` exactly. The
calibrated booster is the registered model, so the compiled batch scorer, the Spark
UDF path and the API serve calibrated probabilities with no separate map to keep in
step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize

from jobs.training.metrics import calibration_table, expected_calibration_error

CalibrationMode = Literal["auto", "always", "never"]


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """What :func:`calibrate` measured on the validation period and did."""

    method: Literal["none", "platt"]
    reason: str
    slope: float = 1.0
    intercept: float = 0.0
    validation_error_before: float = float("nan")
    validation_error_after: float = float("nan")

    @property
    def applied(self) -> bool:
        return self.method != "none"

    def metrics(self) -> dict[str, float]:
        """MLflow metrics (``calibration_*``)."""
        return {
            "calibration_slope": self.slope,
            "calibration_intercept": self.intercept,
            "validation_calibration_error_before": self.validation_error_before,
            "validation_calibration_error_after": self.validation_error_after,
        }

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def platt_parameters(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising the log loss of ``sigmoid(a * raw + b)`` (Platt 1999).

    Platt's smoothed targets keep the fit finite when a class is nearly absent.
    """
    x = np.asarray(raw, dtype=float)
    y = np.asarray(labels, dtype=float)
    positives, negatives = float(y.sum()), float(len(y) - y.sum())
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * x + theta[1]
        # log(1 + e^z) - t z, stable for either sign of z
        value = float(np.sum(np.logaddexp(0.0, z) - target * z))
        residual = 1.0 / (1.0 + np.exp(-z)) - target
        return value, np.array([float(residual @ x), float(residual.sum())])

    fit = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(fit.x[0]), float(fit.x[1])


def fold_platt(booster: lgb.Booster, *, slope: float, intercept: float) -> lgb.Booster:
    """The booster whose raw score is ``slope * raw + intercept``: every leaf value scaled
    by ``slope``, ``intercept`` added to each leaf of the first tree (exact)."""
    if booster.num_trees() == 0:
        raise ValueError("cannot calibrate a booster without trees")
    lines: list[str] = []
    tree = -1
    for line in booster.model_to_string().splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte offsets of the trees, stale once leaf values are rewritten
        if line.startswith("is_linear=1"):
            raise ValueError("Platt folding supports constant leaves only (linear_tree is off)")
        if line.startswith("Tree="):
            tree = int(line.removeprefix("Tree="))
        elif line.startswith("leaf_value="):
            shift = intercept if tree == 0 else 0.0
            values = [float(v) * slope + shift for v in line.removeprefix("leaf_value=").split()]
            line = "leaf_value=" + " ".join(repr(v) for v in values)
        lines.append(line)
    return lgb.Booster(model_str="\n".join(lines) + "\n")


def calibrate(
    booster: lgb.Booster,
    *,
    inputs: pd.DataFrame,
    labels: np.ndarray,
    mode: CalibrationMode,
    max_error: float,
) -> tuple[lgb.Booster, Calibration]:
    """The booster to register and what was done: Platt-scaled on ``inputs`` (the
    validation period) when its calibration error there exceeds ``max_error`` and
    scaling lowers it, or always / never as ``mode`` says."""
    y = np.asarray(labels, dtype=float)
    before = expected_calibration_error(y, np.asarray(booster.predict(inputs), dtype=float))
    if mode == "never":
        return booster, Calibration(
            method="none", reason="model.calibration is never", validation_error_before=before
        )
    if len(np.unique(y)) < 2:
        return booster, Calibration(
            method="none",
            reason="the validation period has one label class only",
            validation_error_before=before,
        )
    if mode == "auto" and not before > max_error:
        return booster, Calibration(
            method="none",
            reason=f"validation calibration error {before:.4f} <= {max_error}",
            validation_error_before=before,
            validation_error_after=before,
        )
    raw = np.asarray(booster.predict(inputs, raw_score=True), dtype=float)
    slope, intercept = platt_parameters(raw, y)
    if not slope > 0:
        return booster, Calibration(
            method="none",
            reason=f"Platt slope {slope:.4f} is not positive: scaling would reverse the ranking",
            validation_error_before=before,
        )
    scaled = fold_platt(booster, slope=slope, intercept=intercept)
    after = expected_calibration_error(y, np.asarray(scaled.predict(inputs), dtype=float))
    if mode == "auto" and not after < before:
        return booster, Calibration(
            method="none",
            reason=f"Platt scaling would not lower the error ({before:.4f} -> {after:.4f})",
            validation_error_before=before,
            validation_error_after=before,
        )
    reason = (
        "model.calibration is always"
        if mode == "always"
        else f"validation calibration error {before:.4f} > {max_error}"
    )
    return scaled, Calibration(
        method="platt",
        reason=reason,
        slope=slope,
        intercept=intercept,
        validation_error_before=before,
        validation_error_after=after,
    )


def reliability_curve(
    y_true: np.ndarray, scores: np.ndarray, *, bins: int = 10
) -> list[dict[str, float]]:
    """The reliability curve's points (mean predicted, observed rate, rows per bin)."""
    table = calibration_table(y_true, scores, bins=bins)
    return [
        {
            "mean_predicted": float(r.mean_predicted),
            "observed_rate": float(r.observed_rate),
            "rows": int(r.rows),
        }
        for r in table.itertuples()
    ]
