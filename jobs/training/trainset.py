"""The training set: point-in-time features at several as-of dates joined with their label.

Label for as-of date D and horizon H, over the order days D..D+H-1 ([D, D+H)):
``ordered`` is 1 when the customer ordered then (binary), ``spend`` is the total
order amount then (regression); both are 0 for customers without an order. Features
at D see only days before D, so no order is both feature and label.

The split is purged walk-forward (:func:`training_split`), by date, never random
across time. For score date S and horizon H: the holdout as-of date is S - H (its
label window closes the day before S), the validation as-of date (early stopping)
is one horizon earlier, and the newest training date one horizon before that, the
older ones ``training_step_days`` apart. So every training label window ends on or
before the validation as-of date and the validation window on or before the
holdout's: no outcome the holdout judges was seen in fitting or early stopping.
Training windows may overlap each other (weekly dates, 30-day labels); they never
overlap the periods that evaluate the model.
"""

from __future__ import annotations

import datetime as dt
import math
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


class NotEnoughHistoryError(ValueError):
    """The orders do not reach back far enough for the configured training dates."""


@dataclass(frozen=True, kw_only=True)
class TrainingSplit:
    """The as-of dates of each period of a purged walk-forward split (see the module doc)."""

    score_date: dt.date
    horizon_days: int
    train: tuple[dt.date, ...]  # oldest first
    validation: dt.date
    holdout: dt.date

    @property
    def dates(self) -> list[dt.date]:
        """Every as-of date, oldest first (the holdout last, the validation date before it)."""
        return [*self.train, self.validation, self.holdout]

    def label_window(self, as_of: dt.date) -> tuple[dt.date, dt.date]:
        """First and last order day of the label of ``as_of`` (both inclusive)."""
        return as_of, as_of + dt.timedelta(days=self.horizon_days - 1)

    def describe(self) -> dict[str, str]:
        """The dates of every period and their label windows, as MLflow tags."""

        def window(as_of: dt.date) -> str:
            first, last = self.label_window(as_of)
            return f"{first.isoformat()}..{last.isoformat()}"

        return {
            "training.as_of_dates": ",".join(d.isoformat() for d in self.dates),
            "training.train_as_of_dates": ",".join(d.isoformat() for d in self.train),
            "training.train_label_windows": f"{window(self.train[0])} to {window(self.train[-1])}",
            "training.validation_as_of_date": self.validation.isoformat(),
            "training.validation_label_window": window(self.validation),
            "training.holdout_as_of_date": self.holdout.isoformat(),
            "training.holdout_label_window": window(self.holdout),
            "training.embargo_days": str(self.horizon_days),
        }


def training_split(
    score_date: dt.date,
    *,
    horizon_days: int,
    n_dates: int,
    step_days: int,
    first_order_date: dt.date | None = None,
    allow_fewer: bool = False,
) -> TrainingSplit:
    """The purged walk-forward split for ``score_date``: ``n_dates`` as-of dates in all.

    A date is usable when some order precedes it (``first_order_date < D``). When the
    holdout or validation date is not usable, or fewer training dates are than
    configured, this raises :class:`NotEnoughHistoryError` naming the dates needed and
    available; with ``allow_fewer`` the usable training dates are used (at least one).
    """
    if n_dates < 3:
        raise ValueError(
            f"a split needs at least 3 as-of dates (train, validation, holdout): {n_dates}"
        )
    horizon = dt.timedelta(days=horizon_days)
    holdout = score_date - horizon
    validation = holdout - horizon
    newest_train = validation - horizon
    wanted = sorted(newest_train - dt.timedelta(days=step_days * i) for i in range(n_dates - 2))

    def usable(d: dt.date) -> bool:
        return first_order_date is None or first_order_date < d

    train = [d for d in wanted if usable(d)]
    evaluable = usable(validation) and usable(holdout)
    if not evaluable or (len(train) < len(wanted) and not (allow_fewer and train)):
        first = "none" if first_order_date is None else first_order_date.isoformat()
        lacking = (
            f"only {len(train)} of the {len(wanted)} training dates have history"
            if evaluable
            else f"the {'holdout' if not usable(holdout) else 'validation'} date has no history"
        )
        raise NotEnoughHistoryError(
            f"not enough history before {score_date} for {n_dates} as-of dates with a "
            f"{horizon_days}-day horizon: the purged split needs training dates "
            f"{wanted[0]}..{wanted[-1]} (every {step_days} days), validation {validation} and "
            f"holdout {holdout}; the first order is on {first}, so {lacking}. "
            "Lower model.training_dates or model.training_step_days, or set "
            "model.allow_fewer_training_dates to train on the usable dates"
        )
    return TrainingSplit(
        score_date=score_date,
        horizon_days=horizon_days,
        train=tuple(train),
        validation=validation,
        holdout=holdout,
    )


@dataclass(frozen=True, kw_only=True)
class Sample:
    """How many training rows were drawn, of at most how many, and with which fraction."""

    fraction: float  # 1.0: every row
    row_bound: int  # rows before sampling, at most (customers with history, per date)
    max_rows: int

    def describe(self) -> dict[str, str]:
        return {
            "training.sample_fraction": f"{self.fraction:.6g}",
            "training.rows_before_sample_at_most": str(self.row_bound),
            "training.max_rows": str(self.max_rows),
        }


@dataclass(frozen=True, kw_only=True)
class TrainingData:
    frame: pd.DataFrame  # customer_id, as_of_date, every feature, label
    split: TrainingSplit
    lineage: list[Lineage]
    sample: Sample | None = None  # None: not sampled (every row)

    @property
    def as_of_dates(self) -> list[dt.date]:
        return self.split.dates

    def period(self, role: str) -> pd.DataFrame:
        """``train``, ``validation`` or ``holdout`` rows (the split's dates of that period)."""
        split = self.split
        dates = self.frame["as_of_date"]
        masks = {
            "train": dates.isin(split.train),
            "validation": dates == split.validation,
            "holdout": dates == split.holdout,
        }
        if role not in masks:
            raise KeyError(f"unknown period {role!r}: use train, validation or holdout")
        return self.frame[masks[role]].reset_index(drop=True)


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


def first_order_dates(orders: DataFrame) -> dict[dt.date, int]:
    """Customers by the day of their first order (a few thousand rows, however many orders)."""
    firsts = orders.groupBy("customer_id").agg(F.min("order_date").alias("first"))
    return {
        r["first"]: int(r["n"])
        for r in firsts.groupBy("first").agg(F.count("*").alias("n")).collect()
    }


def configured_split(
    settings: Settings, *, score_date: dt.date, horizon_days: int, firsts: dict[dt.date, int]
) -> TrainingSplit:
    """``training_split`` with the model settings' dates, for orders whose first days are ``firsts``."""
    cfg = settings.model
    return training_split(
        score_date,
        horizon_days=horizon_days,
        n_dates=cfg.training_dates,
        step_days=cfg.training_step_days,
        first_order_date=min(firsts, default=None),
        allow_fewer=cfg.allow_fewer_training_dates,
    )


def customers_before(firsts: dict[dt.date, int], as_of: dt.date) -> int:
    """Customers with an order before ``as_of``: the feature rows of that as-of date."""
    return sum(n for day, n in firsts.items() if day < as_of)


def sample_rows(
    frame: DataFrame, *, row_bound: int, max_rows: int, seed: int
) -> tuple[DataFrame, Sample]:
    """At most ``max_rows`` rows of ``frame`` (at most ``row_bound`` rows), drawn in Spark.

    A seeded hash of ``customer_id`` picks the customers, so a sampled customer keeps
    all its as-of dates and a re-run draws the same sample; every label class and
    every date keep the same fraction (stratified in expectation). The fraction leaves
    four standard deviations of room under the cap: with ``row_bound`` rows the sample
    exceeds ``max_rows`` with a probability below 1e-4, and the driver only ever
    collects the sample.
    """
    if row_bound <= max_rows:
        return frame, Sample(fraction=1.0, row_bound=row_bound, max_rows=max_rows)
    fraction = max(max_rows - 4.0 * math.sqrt(max_rows), 1.0) / row_bound
    modulus = 1_000_003
    bucket = F.pmod(F.xxhash64(F.col("customer_id").cast("string"), F.lit(seed)), F.lit(modulus))
    sampled = frame.where(bucket < F.lit(fraction * modulus))
    return sampled, Sample(fraction=fraction, row_bound=row_bound, max_rows=max_rows)


def to_frame(rows: DataFrame) -> pd.DataFrame:
    """Collect training rows, ordered by as-of date and customer (the order every fit sees)."""
    raw: pd.DataFrame = rows.toPandas()
    raw["as_of_date"] = pd.to_datetime(raw["as_of_date"]).dt.date
    return raw.sort_values(["as_of_date", "customer_id"], kind="stable").reset_index(drop=True)


def check_periods(data: TrainingData, *, what: str) -> None:
    for role in ("train", "validation", "holdout"):
        if data.period(role).empty:
            dates = [d.isoformat() for d in data.as_of_dates]
            raise NotEnoughHistoryError(
                f"not enough history before {data.split.score_date} for {what}: the {role} "
                f"period of as-of dates {dates} has no customers"
            )


def load_training_data(
    spark: SparkSession, settings: Settings, *, definition: ModelDefinition, score_date: dt.date
) -> TrainingData:
    """Read silver.orders at its current version (recorded as lineage) and build the set."""
    cfg = settings.model
    version = table_version(spark, settings, SILVER_ORDERS)
    orders = read_table(spark, settings, SILVER_ORDERS, version=version).cache()
    try:
        rows = orders.count()
        firsts = first_order_dates(orders)
        split = configured_split(
            settings, score_date=score_date, horizon_days=definition.horizon_days, firsts=firsts
        )
        full = build_training_set(
            orders,
            as_of_dates=split.dates,
            horizon_days=definition.horizon_days,
            label=definition.label,
        )
        sampled, sample = sample_rows(
            full,
            row_bound=sum(customers_before(firsts, d) for d in split.dates),
            max_rows=cfg.max_training_rows,
            seed=cfg.seed,
        )
        frame = to_frame(sampled)
    finally:
        orders.unpersist()
    missing = sorted(set(definition.feature_names) - set(frame.columns))
    if missing:
        raise ValueError(
            f"model {definition.name!r} needs features the feature job does not compute: "
            f"{', '.join(missing)}"
        )
    data = TrainingData(
        frame=frame,
        split=split,
        sample=sample,
        lineage=[
            Lineage(
                table=SILVER_ORDERS.name,
                path=table_path(settings, SILVER_ORDERS),
                version=version,
                rows=rows,
            )
        ],
    )
    check_periods(data, what=f"model {definition.name!r}")
    return data
