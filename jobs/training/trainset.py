"""The training set: point-in-time features at several as-of dates joined with their label.

Label for as-of date D and horizon H, over the order days D..D+H-1 ([D, D+H)):
``ordered`` is 1 when the customer ordered then (binary), ``spend`` is the total
order amount then (regression); both are 0 for customers without an order. Features at D see only days before D, so no order is both feature
and label. A model meant to score date S trains only on as-of dates whose label
window closed before S (D + H <= S). The split is by date, never random across
time: the last as-of date is the holdout, the one before it the validation
period (early stopping), all earlier ones the training period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.features import compute_customer_features
from jobs.platform import read_table, table_path, table_version
from schemas.models import ModelDefinition
from schemas.settings import Settings
from schemas.tables import SILVER_ORDERS


def ordered_label(orders: DataFrame, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    """``customer_id, label=1`` for every customer with an order in [as_of, as_of + H)."""
    end = as_of + dt.timedelta(days=horizon_days)
    window = (F.col("order_date") >= F.lit(as_of)) & (F.col("order_date") < F.lit(end))
    return orders.where(window).select("customer_id").distinct().withColumn("label", F.lit(1))


def spend_label(orders: DataFrame, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    """``customer_id, label=total amount`` for every customer with an order in [as_of, as_of + H)."""
    end = as_of + dt.timedelta(days=horizon_days)
    window = (F.col("order_date") >= F.lit(as_of)) & (F.col("order_date") < F.lit(end))
    return (
        orders.where(window)
        .groupBy("customer_id")
        .agg(F.sum(F.col("amount").cast("double")).alias("label"))
    )


LabelFn = Callable[..., DataFrame]
LABELS: dict[str, LabelFn] = {"ordered": ordered_label, "spend": spend_label}


@dataclass(frozen=True, kw_only=True)
class Lineage:
    """A Delta table read by training, at the exact version read (time-travel with versionAsOf)."""

    table: str
    path: str
    version: int
    rows: int


@dataclass(frozen=True, kw_only=True)
class TrainingData:
    frame: pd.DataFrame  # customer_id, as_of_date, every feature, label
    as_of_dates: list[dt.date]
    lineage: list[Lineage]

    def period(self, role: str) -> pd.DataFrame:
        """``train`` (all but the last two dates), ``validation`` or ``holdout`` rows."""
        holdout_date, valid_date = self.as_of_dates[-1], self.as_of_dates[-2]
        dates = self.frame["as_of_date"]
        masks = {
            "train": dates < valid_date,
            "validation": dates == valid_date,
            "holdout": dates == holdout_date,
        }
        if role not in masks:
            raise KeyError(f"unknown period {role!r}: use train, validation or holdout")
        return self.frame[masks[role]].reset_index(drop=True)


def training_as_of_dates(
    score_date: dt.date, *, horizon_days: int, n_dates: int, step_days: int
) -> list[dt.date]:
    """As-of dates, oldest first, whose label window [D, D+H) ends before ``score_date``."""
    last = score_date - dt.timedelta(days=horizon_days)
    return sorted(last - dt.timedelta(days=step_days * i) for i in range(n_dates))


def labels(
    orders: DataFrame, *, as_of: dt.date, horizon_days: int, kind: str = "ordered"
) -> DataFrame:
    if kind not in LABELS:
        raise KeyError(f"unknown label {kind!r}: known labels are {', '.join(sorted(LABELS))}")
    return LABELS[kind](orders, as_of=as_of, horizon_days=horizon_days)


def build_training_set(
    orders: DataFrame, *, as_of_dates: list[dt.date], horizon_days: int, label: str = "ordered"
) -> DataFrame:
    """Features at every as-of date, left-joined with that date's label (0 when no order)."""
    if not as_of_dates:
        raise ValueError("no as-of dates to build a training set from")
    parts = []
    for as_of in as_of_dates:
        feats = compute_customer_features(orders, as_of=as_of)
        lab = labels(orders, as_of=as_of, horizon_days=horizon_days, kind=label)
        parts.append(feats.join(lab, "customer_id", "left").fillna(0, subset=["label"]))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def load_training_data(
    spark: SparkSession, settings: Settings, *, definition: ModelDefinition, score_date: dt.date
) -> TrainingData:
    """Read silver.orders at its current version (recorded as lineage) and build the set."""
    cfg = settings.model
    version = table_version(spark, settings, SILVER_ORDERS)
    orders = read_table(spark, settings, SILVER_ORDERS, version=version).cache()
    try:
        rows = orders.count()
        dates = training_as_of_dates(
            score_date,
            horizon_days=definition.horizon_days,
            n_dates=cfg.training_dates,
            step_days=cfg.training_step_days,
        )
        raw: pd.DataFrame = build_training_set(
            orders, as_of_dates=dates, horizon_days=definition.horizon_days, label=definition.label
        ).toPandas()
    finally:
        orders.unpersist()
    missing = sorted(set(definition.feature_names) - set(raw.columns))
    if missing:
        raise ValueError(
            f"model {definition.name!r} needs features the feature job does not compute: "
            f"{', '.join(missing)}"
        )
    raw["as_of_date"] = pd.to_datetime(raw["as_of_date"]).dt.date
    frame = raw.sort_values(["as_of_date", "customer_id"], kind="stable").reset_index(drop=True)
    data = TrainingData(
        frame=frame,
        as_of_dates=dates,
        lineage=[
            Lineage(
                table=SILVER_ORDERS.name,
                path=table_path(settings, SILVER_ORDERS),
                version=version,
                rows=rows,
            )
        ],
    )
    for role in ("train", "validation", "holdout"):
        if data.period(role).empty:
            raise ValueError(
                f"not enough history before {score_date}: the {role} period of as-of dates "
                f"{[d.isoformat() for d in dates]} has no customers"
            )
    return data
