"""Request-time features for the cold-start model, computed point-in-time like the batch ones.

For as-of date D a customer is known when they signed up before D (profile) or
ordered before D. Their request-time features are what the website can send:
country / channel / device (profile; null on CDNOW), days since signup (the
profile's signup date, else the first order's date) and the first order's value
and items (null when there was no order before D). Label: ordered in [D, D+H).
Encoding follows ``schemas.coldstart.encode`` exactly (``encode_frame`` is its
vectorised twin, checked against it in the tests).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.training.trainset import labels
from schemas.coldstart import CATEGORICAL, FEATURE_ORDER, ColdStartSpec

MAX_LEVELS = 100


def first_orders(orders: DataFrame) -> DataFrame:
    """``customer_id, first_order_date, first_order_amount, first_order_items`` (all time).

    A customer's first order never changes once placed, so "the first order before D"
    is this row when ``first_order_date < D`` (one window for every as-of date).
    """
    order_key = Window.partitionBy("customer_id").orderBy("order_date", "order_id")
    return (
        orders.withColumn("_n", F.row_number().over(order_key))
        .where(F.col("_n") == 1)
        .select(
            "customer_id",
            F.col("order_date").alias("first_order_date"),
            F.col("amount").cast("double").alias("first_order_amount"),
            F.col("quantity").cast("double").alias("first_order_items"),
        )
    )


def coldstart_rows(
    orders: DataFrame,
    customers: DataFrame | None,
    *,
    as_of: dt.date,
    horizon_days: int,
    label: str = "ordered",
) -> DataFrame:
    """One row per customer known before ``as_of``: request-time features and the label."""
    as_of_col = F.lit(as_of).cast("date")
    first = first_orders(orders).where(F.col("first_order_date") < as_of_col)
    if customers is not None:
        profile = customers.where(
            F.col("signup_date").isNull() | (F.col("signup_date") < as_of_col)
        ).select("customer_id", "signup_date", *CATEGORICAL)
        known = first.join(profile, "customer_id", "full")
    else:
        known = first.select(
            "*",
            F.lit(None).cast("date").alias("signup_date"),
            *[F.lit(None).cast("string").alias(c) for c in CATEGORICAL],
        )
    signup = F.coalesce(F.col("signup_date"), F.col("first_order_date"))
    lab = labels(orders, as_of=as_of, horizon_days=horizon_days, kind=label)
    return (
        known.where(signup.isNotNull())
        .withColumn("days_since_signup", F.datediff(as_of_col, signup).cast("double"))
        .withColumn("as_of_date", as_of_col)
        .join(lab, "customer_id", "left")
        .fillna(0, subset=["label"])
        .select("customer_id", "as_of_date", *FEATURE_ORDER, "label")
    )


def categorical_levels(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Levels per categorical (most frequent first, capped); every categorical gets a key, so an
    unseen value encodes as NaN rather than failing the numeric cast in ``encode``."""
    out: dict[str, list[str]] = {}
    for name in CATEGORICAL:
        counts = frame[name].dropna().astype(str).value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[name] = [level for level, _ in ranked[:MAX_LEVELS]]
    return out


def encode_frame(frame: pd.DataFrame, spec: ColdStartSpec) -> pd.DataFrame:
    """The model's input matrix, float64 in ``spec.feature_order``; same rules as ``encode``."""
    out = pd.DataFrame(index=frame.index)
    for name in spec.feature_order:
        if name in spec.categorical_levels:
            index = {level: float(i) for i, level in enumerate(spec.categorical_levels[name])}
            out[name] = frame[name].map(index).astype("float64")
        else:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return out


def segment_priors(
    frame: pd.DataFrame, *, field: str | None, levels: dict[str, list[str]]
) -> tuple[str | None, dict[str, float]]:
    """Base rate per value of ``field`` (only when the field has levels in the data)."""
    if not field or not levels.get(field):
        return None, {}
    rates = frame.dropna(subset=[field]).groupby(field)["label"].mean()
    return field, {str(k): float(v) for k, v in rates.items() if str(k) in levels[field]}


def build_spec(train: pd.DataFrame, *, model_name: str, segment_field: str | None) -> ColdStartSpec:
    levels = categorical_levels(train)
    field, priors = segment_priors(train, field=segment_field, levels=levels)
    return ColdStartSpec(
        model_name=model_name,
        feature_order=list(FEATURE_ORDER),
        categorical_levels=levels,
        segment_field=field,
        segment_priors=priors,
        global_prior=float(np.clip(train["label"].mean(), 0.0, 1.0)),
    )
