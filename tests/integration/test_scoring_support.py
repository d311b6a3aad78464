"""Helpers (no tests) for scoring tests and the scoring benchmark: synthetic features and a
tiny LightGBM model registered in the real MLflow registry under an alias."""

from __future__ import annotations

import datetime as dt

import lightgbm as lgb
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from jobs.features.build import WRITE_CONF
from jobs.platform.lake import ensure_table, table_path
from jobs.platform.spark import session_conf
from schemas.features import FEATURES, PROFILE_FEATURES
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES


def synthetic_features(*, customers: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Feature rows for customers ``C0000000..``; ``shift`` moves every feature (drift)."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {
        "customer_id": np.char.add("C", np.char.zfill(np.arange(customers).astype(str), 7))
    }
    for i, feature in enumerate(FEATURES):
        values = rng.gamma(2.0, 10.0 + i, size=customers) * (1.0 + shift)
        data[feature.name] = (
            values.astype(np.int32) if feature.dtype == "INT" else values.astype(np.float64)
        )
    for feature in PROFILE_FEATURES:  # the extra columns of gold; models here do not use them
        if feature.dtype == "STRING":
            data[feature.name] = rng.choice(np.array(["a", "b", "c"], dtype=object), customers)
        else:
            data[feature.name] = rng.integers(0, 1000, customers).astype(np.int32)
    return pd.DataFrame(data)


def write_feature_partition(
    spark: SparkSession,
    settings: Settings,
    *,
    as_of: dt.date,
    customers: int,
    seed: int,
    shift: float = 0.0,
    row_group_bytes: int | None = None,
) -> int:
    """(Re)write ``gold.customer_features`` for ``as_of`` in one file, as the feature build
    writes its table and files (the spec's table properties and ``jobs.features.build.WRITE_CONF``, with
    ``row_group_bytes`` Parquet row groups when given); returns the table's new version."""
    frame = synthetic_features(customers=customers, seed=seed, shift=shift)
    frame.insert(1, "as_of_date", as_of)
    ensure_table(spark, settings, CUSTOMER_FEATURES)
    df = spark.createDataFrame(frame, CUSTOMER_FEATURES.ddl).coalesce(1)
    conf = dict(WRITE_CONF)
    if row_group_bytes is not None:
        conf["parquet.block.size"] = str(row_group_bytes)
    with session_conf(spark, conf):
        (
            df.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"as_of_date = DATE'{as_of.isoformat()}'")
            .save(table_path(settings, CUSTOMER_FEATURES))
        )
    from jobs.platform.lake import table_version

    return table_version(spark, settings, CUSTOMER_FEATURES)


def train_tiny_booster(
    *,
    trees: int,
    train_rows: int,
    seed: int = 0,
    features: list[str] | None = None,
    leaves: int = 31,
) -> lgb.Booster:
    """A booster on every feature of the catalogue, or on ``features`` only (in that order)."""
    frame = synthetic_features(customers=train_rows, seed=seed + 100)
    names = features or [f.name for f in FEATURES]
    x = frame[names].astype(np.float64)
    logit = -0.05 * frame["recency_days"] + 0.1 * frame["frequency_30d"] - 0.5
    y = (np.random.default_rng(seed).random(train_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {
        "objective": "binary",
        "num_leaves": leaves,
        "learning_rate": 0.05,
        "min_data_in_leaf": 20,
        "num_threads": 2,
        "verbosity": -1,
        "seed": seed,
    }
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=trees)


def register_tiny_model(
    settings: Settings,
    *,
    trees: int = 20,
    train_rows: int = 2_000,
    alias: str = "champion",
    seed: int = 0,
    drop_feature: str | None = None,
    features: list[str] | None = None,
    leaves: int = 31,
) -> lgb.Booster:
    """Train, log and register a LightGBM model; point ``alias`` at the new version."""
    import mlflow
    from mlflow.models import infer_signature

    from jobs.platform.registry import configure_mlflow

    client = configure_mlflow(settings)
    booster = train_tiny_booster(
        trees=trees, train_rows=train_rows, seed=seed, features=features, leaves=leaves
    )
    if drop_feature is not None:  # a model that expects a feature the table lacks
        booster = _renamed(booster, drop_feature)
    x = synthetic_features(customers=50, seed=seed).reindex(columns=booster.feature_name())
    x = x.fillna(0.0)
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=infer_signature(x, booster.predict(x)),
            registered_model_name=settings.model.name,
        )
    client.set_registered_model_alias(
        settings.model.name, alias, str(info.registered_model_version)
    )
    return booster


def _renamed(booster: lgb.Booster, feature: str) -> lgb.Booster:
    text = booster.model_to_string()
    return lgb.Booster(model_str=text.replace(feature, f"{feature}_v2", 1))
