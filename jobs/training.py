"""Training set, LightGBM training and registration for the purchase model.

Label for as-of date D: the customer ordered on days D..D+H-1. Features at D see
only days before D, so no order is both feature and label. A model meant to
score date S trains only on as-of dates whose label window closed before S.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass, field

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.features import compute_customer_features
from jobs.gate import GateDecision, decide
from jobs.lake import read_table, table_path, table_version
from jobs.metrics import binary_metrics
from jobs.registry import CHALLENGER, CHAMPION, configure_mlflow, load_booster, version_by_alias
from schemas.features import FEATURE_NAMES
from schemas.settings import Settings
from schemas.tables import SILVER_ORDERS


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    decision: GateDecision
    as_of_dates: list[dt.date] = field(default_factory=list)


def training_as_of_dates(
    score_date: dt.date, *, horizon_days: int, n_dates: int, step_days: int
) -> list[dt.date]:
    """As-of dates, oldest first, whose label window [D, D+H) ends before ``score_date``."""
    last = score_date - dt.timedelta(days=horizon_days)
    return sorted(last - dt.timedelta(days=step_days * i) for i in range(n_dates))


def labels(orders: DataFrame, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    end = as_of + dt.timedelta(days=horizon_days)
    window = (F.col("order_date") >= F.lit(as_of)) & (F.col("order_date") < F.lit(end))
    return orders.where(window).select("customer_id").distinct().withColumn("label", F.lit(1))


def build_training_set(
    orders: DataFrame, *, as_of_dates: list[dt.date], horizon_days: int
) -> DataFrame:
    parts = []
    for as_of in as_of_dates:
        feats = compute_customer_features(orders, as_of=as_of)
        lab = labels(orders, as_of=as_of, horizon_days=horizon_days)
        parts.append(feats.join(lab, "customer_id", "left").fillna(0, subset=["label"]))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def baseline_scores(frame: pd.DataFrame, *, prior: float) -> dict[str, np.ndarray]:
    """Scores of the two baselines every model must beat: the base rate and recency/frequency."""
    rf = frame["frequency_365d"].to_numpy(float) / (1.0 + frame["recency_days"].to_numpy(float))
    return {"prior": np.full(len(frame), prior), "recency_frequency": rf}


def train_model(spark: SparkSession, settings: Settings, *, score_date: dt.date) -> TrainResult:
    cfg = settings.model
    client = configure_mlflow(settings)
    silver_version = table_version(spark, settings, SILVER_ORDERS)
    orders = read_table(spark, settings, SILVER_ORDERS, version=silver_version)
    dates = training_as_of_dates(
        score_date,
        horizon_days=cfg.horizon_days,
        n_dates=cfg.training_dates,
        step_days=cfg.training_step_days,
    )
    raw: pd.DataFrame = build_training_set(
        orders, as_of_dates=dates, horizon_days=cfg.horizon_days
    ).toPandas()
    frame = raw.sort_values(["as_of_date", "customer_id"], kind="stable").reset_index(drop=True)
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"]).dt.date
    holdout_date, valid_date = dates[-1], dates[-2]
    train = frame[frame["as_of_date"] < valid_date]
    valid = frame[frame["as_of_date"] == valid_date]
    holdout = frame[frame["as_of_date"] == holdout_date]
    if train.empty or valid.empty or holdout.empty:
        raise ValueError(f"not enough history before {score_date} for as-of dates {dates}")

    params = {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }
    x_cols = list(FEATURE_NAMES)
    dtrain = lgb.Dataset(train[x_cols], label=train["label"], free_raw_data=False)
    dvalid = lgb.Dataset(valid[x_cols], label=valid["label"], reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    x_hold = holdout[x_cols]
    y_hold = holdout["label"].to_numpy(float)
    scores = np.asarray(booster.predict(x_hold, num_iteration=booster.best_iteration))
    metrics = binary_metrics(y_hold, scores)
    prior = float(train["label"].mean())
    baselines = {
        name: binary_metrics(y_hold, s) for name, s in baseline_scores(holdout, prior=prior).items()
    }
    champion_metrics = _champion_metrics(client, settings, x_hold=x_hold, y_hold=y_hold)
    decision = decide(
        candidate=metrics, champion=champion_metrics, baselines=baselines, settings=settings
    )

    with mlflow.start_run(run_name=f"{cfg.name}-{score_date.isoformat()}") as run:
        mlflow.log_params({**params, "horizon_days": cfg.horizon_days, "score_date": score_date})
        mlflow.log_param("best_iteration", booster.best_iteration)
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_metric("train_base_rate", prior)
        for name, bm in baselines.items():
            mlflow.log_metrics({f"baseline_{name}_{k}": v for k, v in bm.items()})
        mlflow.set_tags(
            {
                "lineage.silver.orders.path": table_path(settings, SILVER_ORDERS),
                "lineage.silver.orders.version": str(silver_version),
                "training.as_of_dates": ",".join(d.isoformat() for d in dates),
                "code.commit": _git_commit(),
                "gate.verdict": decision.verdict,
                "gate.reason": decision.reason,
            }
        )
        mlflow.log_dict(settings.model.model_dump(), "config/model.json")
        info = mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=infer_signature(x_hold.head(100), scores[:100]),
            input_example=x_hold.head(3),
            registered_model_name=cfg.name,
        )
        version = str(info.registered_model_version)
    client.set_registered_model_alias(cfg.name, CHALLENGER, version)
    if decision.promote:
        client.set_registered_model_alias(cfg.name, CHAMPION, version)
        client.delete_registered_model_alias(cfg.name, CHALLENGER)
    return TrainResult(
        model_name=cfg.name,
        version=version,
        run_id=run.info.run_id,
        metrics=metrics,
        baselines=baselines,
        decision=decision,
        as_of_dates=dates,
    )


def _champion_metrics(
    client: mlflow.MlflowClient, settings: Settings, *, x_hold: pd.DataFrame, y_hold: np.ndarray
) -> dict[str, float] | None:
    current = version_by_alias(client, model_name=settings.model.name, alias=CHAMPION)
    if current is None:
        return None
    champion = load_booster(model_name=settings.model.name, version=str(current.version))
    return binary_metrics(y_hold, np.asarray(champion.predict(x_hold[champion.feature_name()])))


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
