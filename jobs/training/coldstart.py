"""Train, gate and register the cold-start model (contract: schemas/coldstart.py).

Registered as ``<model name><COLDSTART_SUFFIX>``; its run carries
``coldstart/model.txt`` (LightGBM text) and ``coldstart/spec.json`` (ColdStartSpec),
which the API loads, and the same booster as an MLflow LightGBM model so that
the registry shows it like any other. Same time split, and the same evaluate ->
gate -> log -> register step (jobs/training/pipeline.py), as the batch models; its
inputs are the spec's encoding of the request-time features, and the only baseline
is the prior (segment priors are the fallback itself).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields, replace

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.platform import read_table, table_exists, table_path, table_version
from jobs.training.calibration import Calibration
from jobs.training.candidate import Candidate, Champion, IncompatibleChampionError, score_candidate
from jobs.training.coldstart_data import build_spec, coldstart_rows, encode_frame
from jobs.training.pipeline import TrainResult, evaluate_and_register
from jobs.training.train import calibrated, fit_booster, learning_curve, lgb_params
from jobs.training.trainset import (
    Lineage,
    TrainingData,
    check_periods,
    configured_split,
    customers_before,
    first_order_dates,
    sample_rows,
    to_frame,
)
from schemas.coldstart import (
    CATEGORICAL,
    COLDSTART_ARTIFACT_DIR,
    COLDSTART_SUFFIX,
    FEATURE_ORDER,
    MODEL_FILE,
    SPEC_FILE,
    ColdStartSpec,
)
from schemas.models import ModelDefinition
from schemas.settings import Settings
from schemas.tables import SILVER_CUSTOMERS, SILVER_ORDERS

SPEC_ARTIFACT = f"{COLDSTART_ARTIFACT_DIR}/{SPEC_FILE}"
MODEL_ARTIFACT = f"{COLDSTART_ARTIFACT_DIR}/{MODEL_FILE}"


@dataclass(frozen=True, kw_only=True)
class ColdStartResult(TrainResult):
    spec: ColdStartSpec


def coldstart_definition(settings: Settings) -> ModelDefinition:
    """The cold-start model as a definition: the primary label and horizon, request-time inputs."""
    cfg = settings.model
    return ModelDefinition(
        name=cfg.name + COLDSTART_SUFFIX,
        horizon_days=cfg.horizon_days,
        features=FEATURE_ORDER,
        description="cold-start: request-time features for customers without a batch score",
    )


def entry_dates(orders: DataFrame, customers: DataFrame | None) -> dict[dt.date, int]:
    """Customers by the first day they have a cold-start row: the earlier of their first
    order's day and their profile's signup day (a profile without either has none).

    ``customers_before`` of it is exactly the rows ``coldstart_rows`` gives an as-of date,
    so the sample's row bound counts a customer with both an order and a profile once.
    """
    firsts = orders.groupBy("customer_id").agg(F.min("order_date").alias("first"))
    if customers is not None:
        signups = customers.select("customer_id", F.col("signup_date"))
        firsts = firsts.join(signups, "customer_id", "full").select(
            F.least("first", "signup_date").alias("first")  # least() skips nulls
        )
    counts = firsts.where(F.col("first").isNotNull()).groupBy("first").agg(F.count("*").alias("n"))
    return {r["first"]: int(r["n"]) for r in counts.collect()}


def load_coldstart_data(
    spark: SparkSession, settings: Settings, *, score_date: dt.date
) -> TrainingData:
    """Request-time features and labels at the training as-of dates, with the tables read."""
    cfg = settings.model
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
    profiles = 0
    if table_exists(spark, settings, SILVER_CUSTOMERS):
        c_version = table_version(spark, settings, SILVER_CUSTOMERS)
        customers = read_table(spark, settings, SILVER_CUSTOMERS, version=c_version)
        profiles = customers.count()
        lineage.append(
            Lineage(
                table=SILVER_CUSTOMERS.name,
                path=table_path(settings, SILVER_CUSTOMERS),
                version=c_version,
                rows=profiles,
            )
        )
    firsts = first_order_dates(orders)
    split = configured_split(
        settings, score_date=score_date, horizon_days=cfg.horizon_days, firsts=firsts
    )
    horizon = cfg.horizon_days
    parts = [coldstart_rows(orders, customers, as_of=d, horizon_days=horizon) for d in split.dates]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    # A row per customer with an order or a profile before the date (coldstart_rows).
    entries = entry_dates(orders, customers)
    bound = sum(customers_before(entries, d) for d in split.dates)
    sampled, sample = sample_rows(
        union, row_bound=bound, max_rows=cfg.max_training_rows, seed=cfg.seed
    )
    data = TrainingData(frame=to_frame(sampled), split=split, sample=sample, lineage=lineage)
    check_periods(data, what="a cold-start model")
    return data


def spec_encoding(rows: pd.DataFrame, champion: Champion) -> pd.DataFrame:
    """``rows`` encoded with the champion's own spec (the one logged with its run)."""
    if champion.run_id is None:
        raise IncompatibleChampionError(f"champion v{champion.version} has no run with a spec")
    text = mlflow.artifacts.load_text(f"runs:/{champion.run_id}/{SPEC_ARTIFACT}")
    return encode_frame(rows, ColdStartSpec.model_validate_json(text))


def fit_coldstart(data: TrainingData, settings: Settings) -> tuple[Candidate, ColdStartSpec]:
    """Build the spec on the train period, fit on its encoding, score the holdout (pure, no I/O)."""
    cfg = settings.model
    definition = coldstart_definition(settings)
    train, valid, holdout = (data.period(p) for p in ("train", "validation", "holdout"))
    spec = build_spec(train, model_name=definition.name, segment_field=cfg.coldstart_segment_field)
    x_train, x_valid, x_hold = (encode_frame(f, spec) for f in (train, valid, holdout))
    cats = [c for c in CATEGORICAL if spec.categorical_levels.get(c)]
    params = {**lgb_params(settings), "min_data_per_group": 50, "cat_smooth": 10.0}
    rounds = cfg.coldstart_num_boost_round

    def fit(rows: pd.DataFrame, encoded: pd.DataFrame) -> tuple[lgb.Booster, Calibration | None]:
        dtrain = lgb.Dataset(encoded, label=rows["label"], categorical_feature=cats or "auto")
        dvalid = lgb.Dataset(x_valid, label=valid["label"], reference=dtrain)
        fitted = fit_booster(
            params, dtrain, dvalid, rounds=rounds, patience=cfg.early_stopping_rounds
        )
        return calibrated(
            fitted,
            task="binary",
            valid_inputs=x_valid,
            valid_labels=valid["label"],
            settings=settings,
        )

    booster, calibration = fit(train, x_train)
    candidate = score_candidate(
        definition=definition,
        booster=booster,
        params={**params, "num_boost_round": rounds},
        holdout=holdout,
        inputs=x_hold,
        train_base_rate=float(train["label"].mean()),
        baseline_scores={"prior": np.full(len(holdout), spec.global_prior)},
        champion_inputs=spec_encoding,
        artifacts={
            MODEL_ARTIFACT: booster.model_to_string(),
            SPEC_ARTIFACT: json.dumps(spec.model_dump(mode="json"), indent=2),
        },
        calibration=calibration,
    )
    if cfg.learning_curve:
        # The half refits on the full spec's encoding, so only the rows differ.
        curve = learning_curve(
            lambda rows: (fit(rows, encode_frame(rows, spec))[0], x_hold),
            train=train,
            full_metrics=candidate.metrics,
            holdout_labels=holdout["label"].to_numpy(float),
            task="binary",
            seed=cfg.seed,
        )
        candidate = replace(candidate, learning_curve=curve)
    return candidate, spec


def train_coldstart(
    spark: SparkSession, settings: Settings, *, score_date: dt.date
) -> ColdStartResult:
    """Train the cold-start model for ``score_date`` and gate it (the shared step)."""
    data = load_coldstart_data(spark, settings, score_date=score_date)
    candidate, spec = fit_coldstart(data, settings)
    result = evaluate_and_register(
        spark,
        settings,
        candidate=candidate,
        data=data,
    )
    shared = {f.name: getattr(result, f.name) for f in fields(result)}
    return ColdStartResult(**shared, spec=spec)
