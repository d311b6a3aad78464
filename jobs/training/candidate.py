"""A fitted candidate model: what the gate judges and the run log records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature

from schemas.models import ModelDefinition


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A fitted booster and everything needed to judge and log it."""

    definition: ModelDefinition
    booster: lgb.Booster
    params: dict[str, Any]
    holdout: pd.DataFrame
    scores: np.ndarray  # the booster's holdout predictions, row-aligned with ``holdout``
    metrics: dict[str, float]
    signature: ModelSignature
    train_base_rate: float  # mean label of the train period: base rate, or mean amount
