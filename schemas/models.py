"""Model definitions in configuration: what a model predicts, over which horizon, from what.

A second prediction (say, "orders in the next 90 days" from a subset of features)
is one more :class:`ModelDefinition` under ``model.additional`` in the YAML file,
not a copy of the training code. The configured list (the primary definition, built
from the ``model`` section itself, then ``model.additional``) is read by
``schemas.settings.model_definitions``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.features import FEATURE_NAMES

# The registry's aliases (jobs/platform/registry.py): the version that serves, and the one
# the gate compared against it last.
CHAMPION = "champion"
CHALLENGER = "challenger"
# Not an alias: the role in predictions.history of a version a traffic split serves by
# number (api.experiments), scored every night beside the champion and the challenger.
PINNED = "pinned"

# Label kinds the training set builder knows (jobs/training/trainset.py):
# "ordered": the customer ordered at least once on days D..D+H-1 (1, else 0);
# "spend": the customer's total order amount on days D..D+H-1 (0 when no order).
LabelKind = Literal["ordered", "spend"]
LABEL_KINDS: tuple[str, ...] = ("ordered", "spend")

# What kind of prediction a label asks for: the one place that decides the objective,
# metrics, baselines, gate rules and valid prediction range (training branches on it).
ModelTask = Literal["binary", "regression"]
LABEL_TASKS: dict[str, ModelTask] = {"ordered": "binary", "spend": "regression"}


class ModelDefinition(BaseModel):
    """One prediction: registered name, label, horizon (days) and the features it reads, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    label: LabelKind = "ordered"
    horizon_days: int = Field(default=30, ge=1)
    # Empty: every behavioural feature of schemas.features, in catalogue order.
    features: tuple[str, ...] = ()
    description: str = ""

    @field_validator("features")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({f for f in value if value.count(f) > 1})
        if duplicates:
            raise ValueError(f"features listed twice: {', '.join(duplicates)}")
        return value

    @property
    def task(self) -> ModelTask:
        """``binary`` (a probability in [0, 1]) or ``regression`` (a non-negative amount)."""
        return LABEL_TASKS[self.label]

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns, in the order the booster is trained on."""
        return list(self.features or FEATURE_NAMES)
