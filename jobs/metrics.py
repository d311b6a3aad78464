"""Classification metrics used by training, the gate and backtests."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def top_decile_lift(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Positive rate among the 10% highest scores, divided by the overall positive rate."""
    base = float(np.mean(y_true))
    if base == 0.0 or len(y_true) == 0:
        return 0.0
    k = max(1, int(np.ceil(len(scores) * 0.1)))
    # Stable sort so that ties are broken the same way every run.
    top = np.argsort(-scores, kind="stable")[:k]
    return float(np.mean(y_true[top]) / base)


def binary_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(scores, dtype=float), 1e-7, 1 - 1e-7)
    if np.isnan(p).any():
        raise ValueError("scores contain NaN")
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": top_decile_lift(y, p),
        "base_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }
