"""Train, gate and register the cold-start model (contract: schemas/coldstart.py).

Registered as ``<model name><COLDSTART_SUFFIX>``; its run carries
``coldstart/model.txt`` (LightGBM text) and ``coldstart/spec.json`` (ColdStartSpec),
which the API loads, and the same booster as an MLflow LightGBM model so that
the registry shows it like any other. Same time split and gate as the batch
model; the only baseline is the prior (segment priors are the fallback itself).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from pyspark.sql import SparkSession

from jobs.platform import (
    CHAMPION,
    configure_mlflow,
    load_booster,
    read_table,
    table_exists,
    table_path,
    table_version,
)
from jobs.platform import version_by_alias as alias_version
from jobs.training.coldstart_data import build_spec, coldstart_rows, encode_frame
from jobs.training.gate import GateDecision, decide
from jobs.training.gate_log import DecisionRecord, conclude_gate
from jobs.training.metrics import binary_metrics
from jobs.training.run_logging import git_commit, lineage_tags
from jobs.training.train import lgb_params
from jobs.training.trainset import Lineage, training_as_of_dates
from jobs.training.validation import prediction_problems, signature_problems
from schemas.coldstart import (
    CATEGORICAL,
    COLDSTART_ARTIFACT_DIR,
    COLDSTART_SUFFIX,
    MODEL_FILE,
    SPEC_FILE,
    ColdStartSpec,
)
from schemas.settings import Settings
from schemas.tables import SILVER_CUSTOMERS, SILVER_ORDERS


@dataclass(frozen=True, kw_only=True)
class ColdStartResult:
    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    decision: GateDecision
    spec: ColdStartSpec


def load_coldstart_frame(
    spark: SparkSession, settings: Settings, *, dates: list[dt.date]
) -> tuple[pd.DataFrame, list[Lineage]]:
    version = table_version(spark, settings, SILVER_ORDERS)
    orders = read_table(spark, settings, SILVER_ORDERS, version=version)
    lineage = [
        Lineage(
            table=SILVER_ORDERS.name,
            path=table_path(settings, SILVER_ORDERS),
            version=version,
            rows=orders.count(),
        )
    ]
    customers = None
    if table_exists(spark, settings, SILVER_CUSTOMERS):
        c_version = table_version(spark, settings, SILVER_CUSTOMERS)
        customers = read_table(spark, settings, SILVER_CUSTOMERS, version=c_version)
        lineage.append(
            Lineage(
                table=SILVER_CUSTOMERS.name,
                path=table_path(settings, SILVER_CUSTOMERS),
                version=c_version,
                rows=customers.count(),
            )
        )
    horizon = settings.model.horizon_days
    parts = [coldstart_rows(orders, customers, as_of=d, horizon_days=horizon) for d in dates]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    frame: pd.DataFrame = union.toPandas()
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"]).dt.date
    frame = frame.sort_values(["as_of_date", "customer_id"], kind="stable").reset_index(drop=True)
    return frame, lineage


def _champion_metrics(
    settings: Settings, *, name: str, holdout: pd.DataFrame
) -> tuple[str | None, dict[str, float] | None]:
    client = configure_mlflow(settings)
    current = alias_version(client, model_name=name, alias=CHAMPION)
    if current is None:
        return None, None
    text = mlflow.artifacts.load_text(
        f"runs:/{current.run_id}/{COLDSTART_ARTIFACT_DIR}/{SPEC_FILE}"
    )
    spec = ColdStartSpec.model_validate_json(text)
    booster = load_booster(model_name=name, version=str(current.version))
    scores = np.asarray(booster.predict(encode_frame(holdout, spec).to_numpy()), dtype=float)
    return str(current.version), binary_metrics(holdout["label"].to_numpy(float), scores)


def train_coldstart(
    spark: SparkSession, settings: Settings, *, score_date: dt.date
) -> ColdStartResult:
    cfg = settings.model
    name = cfg.name + COLDSTART_SUFFIX
    dates = training_as_of_dates(
        score_date,
        horizon_days=cfg.horizon_days,
        n_dates=cfg.training_dates,
        step_days=cfg.training_step_days,
    )
    frame, lineage = load_coldstart_frame(spark, settings, dates=dates)
    train = frame[frame["as_of_date"] < dates[-2]]
    valid = frame[frame["as_of_date"] == dates[-2]]
    holdout = frame[frame["as_of_date"] == dates[-1]].reset_index(drop=True)
    if train.empty or valid.empty or holdout.empty:
        raise ValueError(f"not enough history before {score_date} for a cold-start model")
    spec = build_spec(train, model_name=name, segment_field=cfg.coldstart_segment_field)
    x_train, x_valid, x_hold = (encode_frame(f, spec) for f in (train, valid, holdout))
    cats = [c for c in CATEGORICAL if spec.categorical_levels.get(c)]
    params = {**lgb_params(settings), "min_data_per_group": 50, "cat_smooth": 10.0}
    dtrain = lgb.Dataset(x_train, label=train["label"], categorical_feature=cats or "auto")
    dvalid = lgb.Dataset(x_valid, label=valid["label"], reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=cfg.coldstart_num_boost_round,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    y_hold = holdout["label"].to_numpy(float)
    scores = np.asarray(booster.predict(x_hold.to_numpy()), dtype=float)
    metrics = binary_metrics(y_hold, np.nan_to_num(scores, nan=0.5))
    baselines = {"prior": binary_metrics(y_hold, np.full(len(y_hold), spec.global_prior))}
    champ_version, champ_metrics = _champion_metrics(settings, name=name, holdout=holdout)
    signature = infer_signature(x_hold.head(100), scores[:100])
    problems = prediction_problems(scores) + signature_problems(
        signature, features=list(spec.feature_order)
    )
    if booster.num_feature() != len(spec.feature_order):
        problems.append(
            f"model has {booster.num_feature()} features, spec lists {len(spec.feature_order)}"
        )
    decision = decide(
        candidate=metrics,
        champion=champ_metrics,
        baselines=baselines,
        gate=settings.gate,
        problems=problems,
    )
    client = configure_mlflow(settings)
    with mlflow.start_run(run_name=f"{name}-{score_date.isoformat()}") as run:
        mlflow.log_params(
            {
                **params,
                "score_date": score_date.isoformat(),
                "features": ",".join(spec.feature_order),
            }
        )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_metrics({f"baseline_prior_{k}": v for k, v in baselines["prior"].items()})
        mlflow.set_tags(
            {
                **lineage_tags(lineage),
                "training.as_of_dates": ",".join(d.isoformat() for d in dates),
                "code.commit": git_commit(),
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            booster.save_model(str(folder / MODEL_FILE))
            (folder / SPEC_FILE).write_text(json.dumps(spec.model_dump(mode="json"), indent=2))
            mlflow.log_artifacts(tmp, COLDSTART_ARTIFACT_DIR)
        info = mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=signature,
            input_example=x_hold.head(3),
            registered_model_name=name,
        )
        version = str(info.registered_model_version)
    conclude_gate(
        spark,
        settings,
        client,
        DecisionRecord(
            model_name=name,
            candidate_version=version,
            champion_version=champ_version,
            decision=decision,
            score_date=score_date,
            holdout_as_of_date=dates[-1],
            candidate=metrics,
            champion=champ_metrics,
            baselines=baselines,
            run_id=run.info.run_id,
        ),
    )
    return ColdStartResult(
        model_name=name,
        version=version,
        run_id=run.info.run_id,
        metrics=metrics,
        baselines=baselines,
        decision=decision,
        spec=spec,
    )
