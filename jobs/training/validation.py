"""Validation of a logged candidate before the gate: what scoring and serving will rely on.

A candidate that fails any check is never promoted (and not made challenger):
- its MLflow signature names exactly the definition's features, in order, as numbers;
- the booster's own feature order is the same (scoring uses ``booster.feature_name()``);
- the model loaded back from MLflow predicts the holdout sample, through the
  signature, equal to the in-memory booster (what was logged is what was evaluated);
- holdout predictions are probabilities in [0, 1] (binary) or finite, non-negative
  amounts (regression: a spend is never below 0).
"""

from __future__ import annotations

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import DataType

from schemas.models import ModelTask

_NUMERIC = {DataType.double, DataType.float, DataType.long, DataType.integer}


def signature_problems(signature: ModelSignature | None, *, features: list[str]) -> list[str]:
    if signature is None or signature.inputs is None:
        return ["the logged model has no input signature"]
    names = list(signature.inputs.input_names())
    if names != features:
        return [f"signature inputs {names} differ from the model's features {features}"]
    odd = [
        str(spec.name)
        for spec in signature.inputs.inputs
        if getattr(spec, "type", None) not in _NUMERIC
    ]
    if odd:
        return [f"signature inputs are not numeric: {', '.join(odd)}"]
    if signature.outputs is None:
        return ["the logged model has no output signature"]
    return []


def prediction_problems(scores: np.ndarray, *, task: ModelTask = "binary") -> list[str]:
    p = np.asarray(scores, dtype=float)
    problems = []
    n_nan = int(np.isnan(p).sum())
    if n_nan:
        problems.append(f"{n_nan} of {len(p)} holdout predictions are NaN")
    known = p[~np.isnan(p)]
    if task == "regression":
        infinite = int(np.isinf(known).sum())
        if infinite:
            problems.append(f"{infinite} holdout predictions are infinite")
        negative = int((known < 0.0).sum())
        if negative:
            problems.append(f"{negative} holdout predictions are negative amounts")
        return problems
    outside = int(((known < 0.0) | (known > 1.0)).sum())
    if outside:
        problems.append(f"{outside} holdout predictions are outside [0, 1]")
    return problems


def validate_logged_model(
    *,
    model_uri: str,
    booster: lgb.Booster,
    features: list[str],
    sample: pd.DataFrame,
    scores: np.ndarray,
    max_diff: float,
    task: ModelTask = "binary",
) -> list[str]:
    """Every reason the logged model at ``model_uri`` must not serve (empty: valid)."""
    problems = prediction_problems(scores, task=task)
    if booster.feature_name() != features:
        problems.append(
            f"booster feature order {booster.feature_name()} differs from the definition {features}"
        )
    info = mlflow.models.get_model_info(model_uri)
    problems += signature_problems(info.signature, features=features)
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
        reloaded = np.asarray(loaded.predict(sample[features]), dtype=float).reshape(-1)
    except Exception as exc:  # MLflow raises many types for schema enforcement failures
        problems.append(f"the logged model cannot score the holdout sample: {exc}")
        return problems
    direct = np.asarray(booster.predict(sample[features]), dtype=float)
    diff = float(np.max(np.abs(reloaded - direct))) if len(direct) else 0.0
    if not diff <= max_diff:
        problems.append(f"the logged model's predictions differ from the booster's by {diff:.3g}")
    return problems
