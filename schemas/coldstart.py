"""The cold-start contract shared by training (jobs/) and serving (api/).

The cold-start model scores customers without a batch prediction from what the
website can send at request time. It is registered in MLflow as
``<model name><COLDSTART_SUFFIX>`` with its own ``champion`` alias; its run
carries two artifacts under ``COLDSTART_ARTIFACT_DIR``:

- ``model.txt``: the LightGBM model in its native text format;
- ``spec.json``: a :class:`ColdStartSpec` (feature order, categorical levels,
  segment priors), so that serving encodes a request exactly as training did.

``encode`` is the one encoding function both sides use.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

COLDSTART_SUFFIX = "_coldstart"
COLDSTART_ARTIFACT_DIR = "coldstart"
MODEL_FILE = "model.txt"
SPEC_FILE = "spec.json"

# Request-time features, in the model's order. Categorical ones are encoded as the
# index of the value in ``ColdStartSpec.categorical_levels`` (unknown -> NaN).
CATEGORICAL = ("country", "channel", "device")
NUMERIC = ("days_since_signup", "first_order_amount", "first_order_items")
FEATURE_ORDER = (*CATEGORICAL, *NUMERIC)


class ColdStartContext(BaseModel):
    """What the website may send for a customer without a batch score (all optional)."""

    country: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9_\- ]*$")
    channel: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9_\- ]*$")
    device: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9_\- ]*$")
    days_since_signup: int | None = Field(default=None, ge=0, le=36500)
    first_order_amount: float | None = Field(default=None, ge=0, le=1e7)
    first_order_items: int | None = Field(default=None, ge=0, le=100000)


class ColdStartSpec(BaseModel):
    model_name: str
    feature_order: list[str] = Field(default_factory=lambda: list(FEATURE_ORDER))
    categorical_levels: dict[str, list[str]] = Field(default_factory=dict)
    # Segment priors: base rate per value of ``segment_field`` (e.g. channel), and overall.
    segment_field: str | None = None
    segment_priors: dict[str, float] = Field(default_factory=dict)
    global_prior: float = Field(ge=0.0, le=1.0)


def encode(context: ColdStartContext, spec: ColdStartSpec) -> list[float]:
    """The model's input row for one request (NaN where a value is missing or unknown)."""
    row: list[float] = []
    values = context.model_dump()
    for name in spec.feature_order:
        value = values.get(name)
        if name in spec.categorical_levels:
            levels = spec.categorical_levels[name]
            row.append(float(levels.index(value)) if value in levels else math.nan)
        else:
            row.append(math.nan if value is None else float(value))
    return row


def has_model_inputs(context: ColdStartContext) -> bool:
    """True when the request carries at least one feature the model can use."""
    return any(v is not None for v in context.model_dump().values())


def segment_prior(context: ColdStartContext, spec: ColdStartSpec) -> float:
    """The base rate of the request's segment, else the global base rate."""
    if spec.segment_field:
        value = context.model_dump().get(spec.segment_field)
        if value is not None and value in spec.segment_priors:
            return spec.segment_priors[value]
    return spec.global_prior
