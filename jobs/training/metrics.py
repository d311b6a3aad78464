"""Classification metrics used by training, the gate and backtests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def top_decile_lift(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Positive rate among the 10% highest scores, divided by the overall positive rate.

    Rows tied with the decile's lowest score count in proportion (their mean label), so
    the result does not depend on row order and a constant score has a lift of exactly 1.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(scores, dtype=float)
    base = float(np.mean(y)) if len(y) else 0.0
    if base == 0.0:
        return 0.0
    k = max(1, int(np.ceil(len(y) * 0.1)))
    threshold = np.sort(p)[::-1][k - 1]
    above = p > threshold
    tied = p == threshold
    positives = y[above].sum() + (k - above.sum()) * y[tied].mean()
    return float(positives / k / base)


def calibration_table(y_true: np.ndarray, scores: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate per equal-count score bin (the calibration plot's points)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(scores, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for chunk in np.array_split(order, min(bins, max(1, len(p)))):
        if len(chunk) == 0:
            continue
        rows.append(
            {
                "mean_predicted": float(p[chunk].mean()),
                "observed_rate": float(y[chunk].mean()),
                "rows": len(chunk),
            }
        )
    return pd.DataFrame(rows, columns=["mean_predicted", "observed_rate", "rows"])


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, *, bins: int = 10) -> float:
    """Row-weighted mean |predicted - observed| over equal-count bins (0 = perfectly calibrated)."""
    table = calibration_table(y_true, scores, bins=bins)
    if table.empty:
        return float("nan")
    gap = (table["mean_predicted"] - table["observed_rate"]).abs()
    return float((gap * table["rows"]).sum() / table["rows"].sum())


def binary_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every metric the gate and the MLflow run report, on one set of rows."""
    y = np.asarray(y_true, dtype=float)
    raw = np.asarray(scores, dtype=float)
    if len(y) != len(raw):
        raise ValueError(f"{len(y)} labels but {len(raw)} scores")
    if np.isnan(raw).any():
        raise ValueError(f"scores contain {int(np.isnan(raw).sum())} NaN values")
    p = np.clip(raw, 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": top_decile_lift(y, p),
        "calibration_error": expected_calibration_error(y, p),
        "mean_score": float(np.mean(p)),
        "base_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }
