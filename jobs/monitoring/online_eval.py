"""Online evaluation: the answers the lookup API served, judged by what the customers did.

``monitoring.served`` (``api.served_log``) holds every answer. Once a serving day S's label
window [S, S + horizon) has closed (orders strictly before ``as_of`` are in), each group of
that day's answers -- one model name, version, experiment, arm and source (batch,
coldstart, a prior...) -- is joined to the
orders of the window and its realised ROC AUC, top-decile lift and calibration (observed
over expected positive rate, and the expected calibration error) go to
``monitoring.online_eval``, with Poisson-bootstrap intervals over customers.

Choices:
- The unit is the customer, not the request: a customer answered several times in a day
  counts once in a group, with the last score served that day (a frequent visitor does
  not weigh more than an occasional one; the label is per customer anyway).
- The window starts on the serving day (UTC), not on the answer's score date: the question
  is what the customer did after the answer, and a nightly pipeline serves the score date
  of the same or the previous day. A cold-start answer (model ``<name>_coldstart``) is
  judged with its model's horizon, in its own group.
- Binary models only (AUC, lift and calibration are binary metrics); a ``spend`` model's
  answers are not evaluated.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.platform import ensure_table, read_table, table_exists, table_path
from jobs.training import bootstrap_intervals, expected_calibration_error, weighted_auc
from schemas.coldstart import COLDSTART_SUFFIX
from schemas.settings import OnlineEvalSettings, Settings, model_definitions
from schemas.tables import ONLINE_EVAL, SERVED, SILVER_ORDERS

GROUP = ["model_name", "model_version", "experiment", "arm", "source"]


def weighted_lift(y: np.ndarray, scores: np.ndarray) -> Any:
    """Top-decile lift on weighted rows: the positive rate among the highest-scored tenth of
    the weight (``ceil``), over the overall rate. Rows tied with the decile's boundary
    count in proportion with their tie group's mean label, so with unit weights this is
    exactly ``jobs.training.metrics.top_decile_lift``."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ranked = np.asarray(scores, dtype=float)[order]
    _, inverse = np.unique(ranked, return_inverse=True)
    group_mean = np.bincount(inverse, weights=y[order]) / np.bincount(inverse)
    tied_y, y_ranked = group_mean[inverse], y[order]

    def statistic(w: np.ndarray) -> np.ndarray:
        ws = w[:, order]
        total = ws.sum(axis=1)
        k = np.maximum(1.0, np.ceil(0.1 * total - 1e-9))
        before = np.cumsum(ws, axis=1) - ws
        taken = np.clip(k[:, None] - before, 0.0, ws)
        top = (taken * tied_y).sum(axis=1) / k
        with np.errstate(invalid="ignore", divide="ignore"):
            base = (ws * y_ranked).sum(axis=1) / total
            return np.where(base > 0, top / base, np.nan)

    return statistic


def observed_to_expected(y: np.ndarray, scores: np.ndarray) -> Any:
    """Calibration in the large on weighted rows: the observed positive rate over the mean
    score (1: calibrated; below 1: the scores promise more purchases than happened)."""
    y, p = np.asarray(y, dtype=float), np.asarray(scores, dtype=float)

    def statistic(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ y) / (w @ p)

    return statistic


def evaluate_group(
    labels: np.ndarray, scores: np.ndarray, *, cfg: OnlineEvalSettings
) -> dict[str, float]:
    """Every online metric of one group of served customers, with its interval."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(scores, dtype=float)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"{len(y)} labels and {len(p)} scores: need as many, and at least one")
    out: dict[str, float] = {
        "customers": float(len(y)),
        "positives": float(y.sum()),
        "base_rate": float(y.mean()),
        "mean_score": float(p.mean()),
        "calibration_error": expected_calibration_error(y, p),
    }
    statistics = {
        "lift_top_decile": weighted_lift(y, p),
        "observed_to_expected": observed_to_expected(y, p),
    }
    if 0 < y.sum() < len(y):  # one class only: no pairs to rank, no AUC
        statistics = {"auc": weighted_auc(y, p), **statistics}
    intervals = bootstrap_intervals(
        statistics, rows=len(y), resamples=cfg.resamples, confidence=cfg.confidence, seed=cfg.seed
    )
    for name, low, high in (
        ("auc", "auc_low", "auc_high"),
        ("lift_top_decile", "lift_low", "lift_high"),
        ("observed_to_expected", "oe_low", "oe_high"),
    ):
        iv = intervals.get(name)
        out[name], out[low], out[high] = (
            (iv.estimate, iv.low, iv.high) if iv else (math.nan, math.nan, math.nan)
        )
    return out


def evaluate_served(
    frame: pd.DataFrame, *, served_date: dt.date, horizon_days: int, cfg: OnlineEvalSettings
) -> list[dict[str, Any]]:
    """One ``monitoring.online_eval`` row per group of ``frame`` (one row per customer and
    group: ``GROUP`` columns, ``score``, ``label`` 0/1, ``answers``)."""
    rows = []
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for key, part in frame.groupby(GROUP, dropna=False, sort=True):
        values = dict(zip(GROUP, key, strict=True))
        metrics = evaluate_group(
            part["label"].to_numpy(float), part["score"].to_numpy(float), cfg=cfg
        )
        rows.append(
            {
                "served_date": served_date,
                **{k: (None if pd.isna(v) else str(v)) for k, v in values.items()},
                "horizon_days": horizon_days,
                "answers": int(part["answers"].sum()),
                **metrics,
                "customers": int(metrics["customers"]),
                "positives": int(metrics["positives"]),
                "confidence": cfg.confidence,
                "resamples": cfg.resamples,
                "computed_at": now,
            }
        )
    return rows


@dataclass(frozen=True, kw_only=True)
class OnlineEvalRun:
    """What one night evaluated: the serving days, per model definition."""

    days: dict[str, list[dt.date]]
    rows: int

    @property
    def evaluated(self) -> list[dt.date]:
        return sorted({d for days in self.days.values() for d in days})


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def run_online_evaluation(
    spark: SparkSession, settings: Settings, *, as_of: dt.date
) -> OnlineEvalRun:
    """Evaluate every serving day whose label window closed before ``as_of`` and that has
    no online evaluation yet, for each binary model (and its cold-start model)."""
    if not table_exists(spark, settings, SERVED):
        return OnlineEvalRun(days={}, rows=0)
    served_all = read_table(spark, settings, SERVED)
    done_all = (
        read_table(spark, settings, ONLINE_EVAL)
        if table_exists(spark, settings, ONLINE_EVAL)
        else None
    )
    orders = read_table(spark, settings, SILVER_ORDERS)
    days: dict[str, list[dt.date]] = {}
    written = 0
    for definition in model_definitions(settings):
        if definition.task != "binary":
            continue
        names = [definition.name, definition.name + COLDSTART_SUFFIX]
        horizon = definition.horizon_days
        last = as_of - dt.timedelta(days=horizon)
        served = served_all.where(F.col("model_name").isin(names))
        pending = {
            r[0]
            for r in served.where(F.col("served_date") <= F.lit(last))
            .select("served_date")
            .distinct()
            .collect()
        }
        if done_all is not None:
            done = done_all.where(F.col("model_name").isin(names))
            pending -= {r[0] for r in done.select("served_date").distinct().collect()}
        for day in sorted(pending):
            written += _evaluate_day(
                spark, settings, served, orders, names=names, day=day, horizon=horizon
            )
        if pending:
            days[definition.name] = sorted(pending)
    return OnlineEvalRun(days=days, rows=written)


def _evaluate_day(
    spark: SparkSession,
    settings: Settings,
    served: Any,
    orders: Any,
    *,
    names: list[str],
    day: dt.date,
    horizon: int,
) -> int:
    end = day + dt.timedelta(days=horizon)
    customers = (
        served.where(F.col("served_date") == F.lit(day))
        .groupBy(*GROUP, "customer_id")
        .agg(
            F.max_by("score", "served_at").alias("score"),
            F.count(F.lit(1)).alias("answers"),
        )
    )
    window = (F.col("order_date") >= F.lit(day)) & (F.col("order_date") < F.lit(end))
    positives = orders.where(window).select("customer_id").distinct().withColumn("label", F.lit(1))
    frame: Any = (
        customers.join(positives, "customer_id", "left")
        .fillna(0, subset=["label"])
        .select(*GROUP, "score", "label", "answers")
        .toPandas()
    )
    rows = evaluate_served(frame, served_date=day, horizon_days=horizon, cfg=settings.online_eval)
    columns = [name for name, _ in ONLINE_EVAL.fields]
    data = [tuple(_none_if_nan(r[c]) for c in columns) for r in rows]
    ensure_table(spark, settings, ONLINE_EVAL)
    quoted = ", ".join(f"'{n}'" for n in names)
    (
        spark.createDataFrame(data, ONLINE_EVAL.ddl)
        .write.format("delta")
        .mode("overwrite")
        .option(
            "replaceWhere",
            f"served_date = DATE'{day.isoformat()}' AND model_name IN ({quoted})",
        )
        .save(table_path(settings, ONLINE_EVAL))
    )
    return len(data)
