"""Holdout evaluation: baselines on the same rows, the calibration plot, feature importance."""

from __future__ import annotations

import io

import lightgbm as lgb
import numpy as np
import pandas as pd

from jobs.metrics import binary_metrics, calibration_table


def baseline_scores(frame: pd.DataFrame, *, prior: float) -> dict[str, np.ndarray]:
    """Scores of the two baselines every model must beat: the base rate and recency/frequency."""
    rf = frame["frequency_365d"].to_numpy(float) / (1.0 + frame["recency_days"].to_numpy(float))
    return {"prior": np.full(len(frame), prior), "recency_frequency": rf}


def baseline_metrics(holdout: pd.DataFrame, *, prior: float) -> dict[str, dict[str, float]]:
    """Metrics of each baseline on exactly the holdout rows the candidate is judged on."""
    y = holdout["label"].to_numpy(float)
    return {
        name: binary_metrics(y, scores)
        for name, scores in baseline_scores(holdout, prior=prior).items()
    }


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
