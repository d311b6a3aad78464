"""Holdout evaluation: metrics and baselines per task on the same rows, plots, importance.

Binary (``ordered``): the base rate (prior), recency/frequency, and BG/NBD (Fader,
Hardie & Lee 2005; jobs/training/btyd.py) fitted on the holdout date's own history
(every customer's repeat order days, recency and age before that as-of date, read from
the point-in-time features) and predicting an order in the horizon. Regression
(``spend``): the training period's mean amount (prior) and the customer's last-365-day
spend scaled to the horizon (``monetary_365d``: "spends at the same pace as last year").
"""

from __future__ import annotations

import io

import lightgbm as lgb
import numpy as np
import pandas as pd

from jobs.training.btyd import fit_bg_nbd, probability_of_order
from jobs.training.metrics import binary_metrics, calibration_table
from jobs.training.metrics_regression import regression_metrics
from schemas.models import ModelTask

# The two metrics every summary (retrain lines, Dagster metadata) shows, per task.
HEADLINE_METRICS: dict[ModelTask, tuple[str, str]] = {
    "binary": ("roc_auc", "lift_top_decile"),
    "regression": ("rmse", "gini"),
}
_NAN_FILL: dict[ModelTask, float] = {"binary": 0.5, "regression": 0.0}


def task_metrics(task: ModelTask, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The task's metric set (``binary_metrics`` or ``regression_metrics``)."""
    if task == "regression":
        return regression_metrics(y_true, scores)
    return binary_metrics(y_true, scores)


def filled_metrics(task: ModelTask, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``task_metrics`` of a model's predictions, NaN ones filled: NaN predictions are
    validation's to refuse, and the metrics stay computable meanwhile."""
    return task_metrics(task, y_true, np.nan_to_num(scores, nan=_NAN_FILL[task]))


def bg_nbd_scores(frame: pd.DataFrame, *, horizon_days: int) -> np.ndarray:
    """BG/NBD's P(an order in the next ``horizon_days``), fitted on ``frame``'s histories.

    From the features at the rows' as-of date: repeat order days ``x = order_days_all - 1``,
    age ``T = tenure_days`` and recency ``t_x = tenure_days - recency_days`` (days).
    """
    T = frame["tenure_days"].to_numpy(float)
    x = np.maximum(frame["order_days_all"].to_numpy(float) - 1.0, 0.0)
    t_x = np.clip(T - frame["recency_days"].to_numpy(float), 0.0, T)
    t_x = np.where(x > 0, t_x, 0.0)
    params = fit_bg_nbd(x, t_x, T)
    return probability_of_order(params, x, t_x, T, horizon=float(horizon_days))


def baseline_scores(
    frame: pd.DataFrame, *, prior: float, horizon_days: int = 30
) -> dict[str, np.ndarray]:
    """Scores of the baselines every model must beat: base rate, recency/frequency, BG/NBD."""
    rf = frame["frequency_365d"].to_numpy(float) / (1.0 + frame["recency_days"].to_numpy(float))
    return {
        "prior": np.full(len(frame), prior),
        "recency_frequency": rf,
        "bg_nbd": bg_nbd_scores(frame, horizon_days=horizon_days),
    }


def regression_baseline_scores(
    frame: pd.DataFrame, *, prior: float, horizon_days: int
) -> dict[str, np.ndarray]:
    """The mean amount, and last year's spend at the same pace over the horizon."""
    pace = frame["monetary_365d"].to_numpy(float) * (horizon_days / 365.0)
    return {"prior": np.full(len(frame), prior), "monetary_365d": np.nan_to_num(pace, nan=0.0)}


def task_baseline_scores(
    holdout: pd.DataFrame, *, prior: float, task: ModelTask = "binary", horizon_days: int = 30
) -> dict[str, np.ndarray]:
    """The baselines of a model on customer features, by task, scored on ``holdout``."""
    if task == "regression":
        return regression_baseline_scores(holdout, prior=prior, horizon_days=horizon_days)
    return baseline_scores(holdout, prior=prior, horizon_days=horizon_days)


def baseline_metrics(
    task: ModelTask, y_true: np.ndarray, scores: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Metrics of each baseline on exactly the holdout rows the candidate is judged on."""
    return {name: task_metrics(task, y_true, s) for name, s in scores.items()}


def feature_importance(booster: lgb.Booster) -> pd.DataFrame:
    gain = booster.feature_importance(importance_type="gain")
    split = booster.feature_importance(importance_type="split")
    frame = pd.DataFrame(
        {"feature": booster.feature_name(), "gain": gain.astype(float), "splits": split}
    )
    return frame.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)


def calibration_plot_png(y_true: np.ndarray, scores: np.ndarray, *, title: str) -> bytes:
    """Reliability diagram (equal-count bins) as PNG bytes; matplotlib's Agg backend, no display."""
    from matplotlib.figure import Figure

    table = calibration_table(y_true, scores, bins=10)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max(), 0.01)) * 1.05
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend(loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
