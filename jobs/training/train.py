"""LightGBM training for a configured model definition, then registration through the gate.

``train_model`` = training set (jobs/training/trainset.py) -> ``fit_candidate`` ->
``evaluate_and_register`` (jobs/training/pipeline.py, the step every model shares).
The definition's task (``schemas.models.LABEL_TASKS``) picks the objective, the
metrics, the baselines, the gate rules and the valid prediction range.

Binary (``ordered``), class imbalance: the booster optimises plain (unweighted) binary
log loss and stops early on the validation period's log loss, so its outputs stay
calibrated probabilities (the API serves them as such); no ``is_unbalance`` /
``scale_pos_weight``, which would inflate them. Imbalance-aware metrics (PR AUC,
top-decile lift) and the calibration error are reported instead. When the validation
period shows them off all the same (a cohort shift), Platt scaling fitted there is
folded into the trees (jobs/training/calibration.py), so every scorer serves the
calibrated probabilities.

Learning curve: every fit is repeated on half the training customers (a seeded hash),
judged on the same holdout rows, and both points go to the run
(``learning_curve_*``): a flat curve says the row cap (``model.max_training_rows``)
costs nothing, a steep one that more rows would help.

Regression (``spend``): ``model.regression_objective``, Tweedie (power 1.2) by default.
The target is zero-inflated (83% of CDNOW customers spend nothing in 90 days) and
right-skewed; Tweedie (compound Poisson-gamma, log link) models that mass at zero plus
a skewed positive part, and its log link keeps every prediction a non-negative amount,
as validation requires. CDNOW holdout RMSE (1998-02-01, H=90, 20 as-of dates): Tweedie
1.2 37.0, 1.5 39.2, Poisson 40.5; L2 39.0 with 86 negative predictions (refused); L1
(the conditional median, 0 for most) 41.9 with 1,535 negative. Early stopping follows
the validation period's RMSE, the metric the gate compares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from jobs.training.calibration import Calibration, calibrate
from jobs.training.candidate import Candidate, Champion, IncompatibleChampionError, score_candidate
from jobs.training.evaluation import HEADLINE_METRICS, filled_metrics, task_baseline_scores
from jobs.training.pipeline import TrainResult, evaluate_and_register
from jobs.training.trainset import TrainingData, load_training_data
from schemas.models import ModelDefinition, ModelTask
from schemas.settings import Settings, primary_definition


def lgb_params(settings: Settings, *, task: ModelTask = "binary") -> dict[str, Any]:
    cfg = settings.model
    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": cfg.num_threads,
        "verbosity": -1,
    }
    if task == "regression":
        params["objective"] = cfg.regression_objective
        params["metric"] = "rmse"  # early stopping on the metric the gate compares
        if cfg.regression_objective == "tweedie":
            params["tweedie_variance_power"] = cfg.tweedie_variance_power
    return params


def fit_booster(
    params: dict[str, Any], dtrain: lgb.Dataset, dvalid: lgb.Dataset, *, rounds: int, patience: int
) -> lgb.Booster:
    """Train up to ``rounds`` trees, stopping early on the validation set after ``patience``."""
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )
    if booster.best_iteration > 0:
        # Keep only the trees early stopping chose: the saved model then IS the evaluated one.
        booster = lgb.Booster(
            model_str=booster.model_to_string(num_iteration=booster.best_iteration)
        )
    return booster


def calibrated(
    booster: lgb.Booster,
    *,
    task: ModelTask,
    valid_inputs: pd.DataFrame,
    valid_labels: pd.Series,
    settings: Settings,
) -> tuple[lgb.Booster, Calibration | None]:
    """The booster to register, Platt-scaled on the validation period when it needs it
    (binary models; ``None`` for regression, whose outputs are amounts)."""
    if task != "binary":
        return booster, None
    cfg = settings.model
    return calibrate(
        booster,
        inputs=valid_inputs,
        labels=valid_labels.to_numpy(float),
        mode=cfg.calibration,
        max_error=cfg.max_calibration_error,
    )


def half_customers(frame: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """The rows of a seeded half of ``frame``'s customers (each keeps all its dates)."""
    hashed = pd.util.hash_pandas_object(
        frame["customer_id"].astype(str), index=False, hash_key=f"{seed:016d}"[:16]
    )
    return frame[(hashed.to_numpy() % 2) == 0]


def learning_curve(
    fit: Callable[[pd.DataFrame], tuple[lgb.Booster, pd.DataFrame]],
    *,
    train: pd.DataFrame,
    full_metrics: dict[str, float],
    holdout_labels: np.ndarray,
    task: ModelTask,
    seed: int,
) -> dict[str, float]:
    """The holdout's headline metric at all the training rows and at half the customers.

    ``fit(rows)`` trains on ``rows`` (the same validation period, the same settings) and
    returns the booster with the holdout's input matrix it reads.
    """
    metric = HEADLINE_METRICS[task][0]
    half = half_customers(train, seed=seed)
    out = {
        "learning_curve_full_rows": float(len(train)),
        f"learning_curve_full_{metric}": float(full_metrics[metric]),
        "learning_curve_half_rows": float(len(half)),
    }
    if half.empty or half["label"].nunique() < 2:
        return out
    booster, holdout_inputs = fit(half)
    scores = np.asarray(booster.predict(holdout_inputs), dtype=float)
    out[f"learning_curve_half_{metric}"] = filled_metrics(task, holdout_labels, scores)[metric]
    return out


def feature_columns(rows: pd.DataFrame, champion: Champion) -> pd.DataFrame:
    """The champion's own features (``booster.feature_name()``), read from ``rows``."""
    wanted = champion.booster.feature_name()
    missing = sorted(set(wanted) - set(rows.columns))
    if missing:
        raise IncompatibleChampionError(
            f"champion v{champion.version} needs features absent here: {missing}"
        )
    return rows[wanted]


def fit_candidate(
    data: TrainingData, *, definition: ModelDefinition, settings: Settings
) -> Candidate:
    """Train on the train period, stop early on validation, score the holdout (pure, no I/O)."""
    cfg = settings.model
    x_cols = definition.feature_names
    train, valid, holdout = (data.period(p) for p in ("train", "validation", "holdout"))
    task = definition.task
    params = lgb_params(settings, task=task)

    def fit(rows: pd.DataFrame) -> tuple[lgb.Booster, Calibration | None]:
        dtrain = lgb.Dataset(rows[x_cols], label=rows["label"], free_raw_data=False)
        dvalid = lgb.Dataset(valid[x_cols], label=valid["label"], reference=dtrain)
        fitted = fit_booster(
            params, dtrain, dvalid, rounds=cfg.num_boost_round, patience=cfg.early_stopping_rounds
        )
        return calibrated(
            fitted,
            task=task,
            valid_inputs=valid[x_cols],
            valid_labels=valid["label"],
            settings=settings,
        )

    booster, calibration = fit(train)
    prior = float(train["label"].mean())
    candidate = score_candidate(
        definition=definition,
        booster=booster,
        params={**params, "num_boost_round": cfg.num_boost_round},
        holdout=holdout,
        inputs=holdout[x_cols],
        train_base_rate=prior,
        baseline_scores=task_baseline_scores(
            holdout, prior=prior, task=task, horizon_days=definition.horizon_days
        ),
        champion_inputs=feature_columns,
        calibration=calibration,
    )
    if not cfg.learning_curve:
        return candidate
    curve = learning_curve(
        lambda rows: (fit(rows)[0], holdout[x_cols]),
        train=train,
        full_metrics=candidate.metrics,
        holdout_labels=holdout["label"].to_numpy(float),
        task=task,
        seed=cfg.seed,
    )
    return replace(candidate, learning_curve=curve)


def train_model(
    spark: SparkSession,
    settings: Settings,
    *,
    score_date: dt.date,
    definition: ModelDefinition | None = None,
) -> TrainResult:
    """Train the configured model (default: the primary one) for ``score_date`` and gate it."""
    definition = definition or primary_definition(settings)
    data = load_training_data(spark, settings, definition=definition, score_date=score_date)
    candidate = fit_candidate(data, definition=definition, settings=settings)
    return evaluate_and_register(
        spark,
        settings,
        candidate=candidate,
        data=data,
    )
