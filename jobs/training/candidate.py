"""A fitted candidate model: what the shared evaluate -> gate -> log -> register step judges.

Every model kind (the batch models on customer features, the cold-start model on
request-time features) fits its own booster and hands over a :class:`Candidate`.
What differs between kinds travels on it as data (the holdout's input matrix, the
baselines' scores, extra run artifacts) and one callable (``champion_inputs``: how
the current champion reads the same holdout rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature

from jobs.training.calibration import Calibration
from jobs.training.evaluation import filled_metrics
from schemas.models import ModelDefinition


class IncompatibleChampionError(Exception):
    """The current champion cannot score the candidate's holdout rows (the reason is the text)."""


@dataclass(frozen=True, kw_only=True)
class Champion:
    """The registry's current champion version of the candidate's model."""

    version: str
    run_id: str | None  # None for a version registered without a run
    booster: lgb.Booster


class ChampionInputs(Protocol):
    """The champion's input matrix for ``rows`` (raises IncompatibleChampionError)."""

    def __call__(self, rows: pd.DataFrame, champion: Champion) -> pd.DataFrame: ...


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A fitted booster and everything needed to judge and log it."""

    definition: ModelDefinition
    booster: lgb.Booster
    params: dict[str, Any]
    holdout: pd.DataFrame  # the holdout rows as read: label and raw inputs
    inputs: pd.DataFrame  # the booster's input matrix for ``holdout``, in feature order
    scores: np.ndarray  # the booster's holdout predictions, row-aligned with ``holdout``
    metrics: dict[str, float]
    signature: ModelSignature
    train_base_rate: float  # mean label of the train period: base rate, or mean amount
    baseline_scores: dict[str, np.ndarray]  # each baseline's predictions for ``holdout``
    champion_inputs: ChampionInputs
    # Run-relative artifact path -> text, logged with the run (e.g. what a loader reads).
    artifacts: dict[str, str] = field(default_factory=dict)
    # Binary models: what calibration on the validation period did (None: regression).
    calibration: Calibration | None = None
    # The holdout's headline metric at all the training rows and at half the customers.
    learning_curve: dict[str, float] = field(default_factory=dict)


def score_candidate(
    *,
    definition: ModelDefinition,
    booster: lgb.Booster,
    params: dict[str, Any],
    holdout: pd.DataFrame,
    inputs: pd.DataFrame,
    train_base_rate: float,
    baseline_scores: dict[str, np.ndarray],
    champion_inputs: ChampionInputs,
    artifacts: dict[str, str] | None = None,
    calibration: Calibration | None = None,
) -> Candidate:
    """Score the holdout with a fitted booster: its predictions, metrics and signature (pure)."""
    scores = np.asarray(booster.predict(inputs), dtype=float)
    return Candidate(
        definition=definition,
        booster=booster,
        params=params,
        holdout=holdout,
        inputs=inputs,
        scores=scores,
        metrics=filled_metrics(definition.task, holdout["label"].to_numpy(float), scores),
        signature=infer_signature(inputs.head(100).astype("float64"), scores[:100]),
        train_base_rate=train_base_rate,
        baseline_scores=baseline_scores,
        champion_inputs=champion_inputs,
        artifacts=artifacts or {},
        calibration=calibration,
    )
