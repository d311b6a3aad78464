"""The serving contract: the MongoDB document and the lookup API's response models.

One document per customer, ``_id`` = customer id (unique by construction)::

    {
      "_id": "00042",
      "models": {
        "purchase_30d": {"score": 0.31, "model_version": "3",
                          "score_date": "1998-01-01", "scored_at": datetime,
                          "challenger_version": "4",             # absent: none scored
                          "shadow_scores": {"4": 0.29},          # other versions' scores
                          "reasons": [{"feature": "recency_days", "contribution": -0.8,
                                       "value": 41.0}, ...]}   # absent: none
      },
      "delta_version": 17,          # version of predictions.current it came from
      "synced_at": datetime
    }

Priors (the fallback answer for customers without a batch score) live in a
second collection, one document per model: ``{"_id": model_name, "prior": 0.07,
"model_version": "3", "delta_version": 17}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.coldstart import ColdStartContext

# Customer ids: letters, digits, dash, underscore, dot; never an operator or a path.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

PRIORS_COLLECTION_SUFFIX = "_priors"
SYNC_STATE_COLLECTION = "sync_state"


class Reason(BaseModel):
    """A feature that moved this score most: its contribution (SHAP value, in the model's
    raw score: log-odds for a probability) and the customer's value of it (null: missing)."""

    feature: str
    contribution: float
    value: float | str | None = None


class ModelPrediction(BaseModel):
    model_name: str
    model_version: str | None
    # A probability for a binary model (label "ordered"), an amount for a regression
    # model (label "spend"); never negative (the model validation refuses negative output).
    score: float = Field(ge=0.0)
    score_date: dt.date | None
    scored_at: dt.datetime | None
    source: Literal["batch", "coldstart", "segment_prior", "prior", "default"]
    stale: bool = False
    # Largest contribution first; null when the answer has none (a prior, or a batch score
    # the scoring.reasons policy gave none).
    reasons: list[Reason] | None = None
    # Under a traffic split of this model (``api.experiments``): the experiment and the
    # customer's arm (``champion`` or an arm's name), on every answer of the model whatever
    # its source; null when the model is not split.
    experiment: str | None = None
    arm: str | None = None


class CustomerPredictions(BaseModel):
    customer_id: str
    known: bool = Field(description="True when a batch score exists for this customer.")
    degraded: bool = Field(
        default=False, description="True when the serving store could not be read."
    )
    predictions: list[ModelPrediction]


CustomerIdStr = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN, max_length=64)]
ModelNameStr = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN, max_length=64)]


class BatchLookupRequest(BaseModel):
    """Up to ``api.max_batch_ids`` customer ids, answered with one database round trip."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[CustomerIdStr] = Field(min_length=1, max_length=1000)
    model: ModelNameStr | None = None


class BatchLookupResponse(BaseModel):
    degraded: bool = False
    results: list[CustomerPredictions]


class StrictColdStartContext(ColdStartContext):
    """The cold-start context as the API accepts it: unknown fields and coercions are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ColdStartRequest(BaseModel):
    """A customer plus what the website knows at request time (all context fields optional)."""

    model_config = ConfigDict(extra="forbid")

    context: StrictColdStartContext = Field(default_factory=StrictColdStartContext)
