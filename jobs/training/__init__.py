"""Training sets with their time split, training, evaluation and metrics, validation, the
champion/challenger gate and its log, run logging, and the cold-start model; every model
goes through one evaluate -> log + register -> validate -> gate step (pipeline.py).
"""

from __future__ import annotations

from jobs.training.bootstrap import bootstrap_intervals, weighted_auc
from jobs.training.coldstart import train_coldstart
from jobs.training.evaluation import HEADLINE_METRICS
from jobs.training.metrics import binary_metrics, expected_calibration_error, top_decile_lift
from jobs.training.pipeline import TrainResult
from jobs.training.train import train_model

__all__ = [
    "HEADLINE_METRICS",
    "TrainResult",
    "binary_metrics",
    "bootstrap_intervals",
    "expected_calibration_error",
    "top_decile_lift",
    "train_coldstart",
    "train_model",
    "weighted_auc",
]
