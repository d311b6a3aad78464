"""Nightly scoring: every customer of the feature partition for date D, with the champion.

Writes ``predictions.history`` (append-only; a re-run replaces exactly D's rows of
that model and role) and merges the champion's scores into ``predictions.current``
(an older score date never overwrites a newer one). Everything that can fail
(missing partition, missing alias, features that do not fit the model) fails
before anything is written.

Runs alone: ``python -m jobs.score --date 1998-01-01`` (or through spark-submit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lake import ensure_table, read_table, table_exists, table_path, table_version
from jobs.registry import CHALLENGER, CHAMPION, configure_mlflow, load_booster, version_by_alias
from schemas.settings import Settings, get_settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY


class ScoringError(RuntimeError):
    """Scoring refused to run; nothing was written."""


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    score_date: dt.date
    model_name: str
    model_version: str
    challenger_version: str | None
    rows: int
    run_id: str
    feature_table_version: int
    history_version: int
    current_version: int


def score_partition(
    features: DataFrame, *, booster: lgb.Booster, num_threads: int = 1
) -> DataFrame:
    """``customer_id, score`` for every feature row (pure transform, runs on the executors)."""
    model_str = booster.model_to_string()
    names = booster.feature_name()

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = lgb.Booster(model_str=model_str)
        for pdf in batches:
            x = pdf[names].to_numpy(dtype=np.float64, na_value=np.nan)
            yield pd.DataFrame(
                {
                    "customer_id": pdf["customer_id"],
                    "score": model.predict(x, num_threads=num_threads),
                }
            )

    return features.select("customer_id", *names).mapInPandas(
        predict,  # type: ignore[arg-type]
        schema="customer_id STRING, score DOUBLE",
    )


def score_date(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, run_id: str | None = None
) -> ScoreResult:
    run_id = run_id or uuid.uuid4().hex
    model_name = settings.model.name
    client = configure_mlflow(settings)
    champion = version_by_alias(client, model_name=model_name, alias=CHAMPION)
    if champion is None:
        raise ScoringError(f"model {model_name!r} has no {CHAMPION!r} alias in the registry")
    challenger = version_by_alias(client, model_name=model_name, alias=CHALLENGER)
    models = {
        CHAMPION: (
            str(champion.version),
            load_booster(model_name=model_name, version=str(champion.version)),
        )
    }
    if challenger is not None and str(challenger.version) != str(champion.version):
        models[CHALLENGER] = (
            str(challenger.version),
            load_booster(model_name=model_name, version=str(challenger.version)),
        )

    if not table_exists(spark, settings, CUSTOMER_FEATURES):
        raise ScoringError(f"{CUSTOMER_FEATURES.name} does not exist: build features first")
    feature_version = table_version(spark, settings, CUSTOMER_FEATURES)
    features = read_table(spark, settings, CUSTOMER_FEATURES, version=feature_version).where(
        F.col("as_of_date") == F.lit(score_date)
    )
    n_customers = features.count()
    if n_customers == 0:
        raise ScoringError(
            f"no feature partition {CUSTOMER_FEATURES.name}/as_of_date={score_date.isoformat()}"
        )
    for role, (version, booster) in models.items():
        missing = sorted(set(booster.feature_name()) - set(features.columns))
        if missing:
            raise ScoringError(
                f"{role} {model_name} v{version} needs features missing from "
                f"{CUSTOMER_FEATURES.name}: {', '.join(missing)}"
            )

    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_table(spark, settings, PREDICTIONS_HISTORY)
    ensure_table(
        spark, settings, PREDICTIONS_CURRENT, properties={"delta.enableChangeDataFeed": "true"}
    )
    for role, (version, booster) in models.items():
        rows = score_partition(features, booster=booster).select(
            "customer_id",
            F.lit(model_name).alias("model_name"),
            F.lit(version).alias("model_version"),
            F.lit(role).alias("model_role"),
            "score",
            F.lit(score_date).alias("score_date"),
            F.lit(scored_at).cast("timestamp").alias("scored_at"),
            F.lit(run_id).alias("run_id"),
            F.lit(feature_version).cast("bigint").alias("feature_table_version"),
        )
        condition = (
            f"score_date = DATE'{score_date.isoformat()}' AND model_name = '{model_name}' "
            f"AND model_role = '{role}'"
        )
        rows.write.format("delta").mode("overwrite").option("replaceWhere", condition).save(
            table_path(settings, PREDICTIONS_HISTORY)
        )
    history_version = table_version(spark, settings, PREDICTIONS_HISTORY)
    _merge_current(spark, settings, score_date=score_date, history_version=history_version)
    return ScoreResult(
        score_date=score_date,
        model_name=model_name,
        model_version=models[CHAMPION][0],
        challenger_version=models[CHALLENGER][0] if CHALLENGER in models else None,
        rows=n_customers,
        run_id=run_id,
        feature_table_version=feature_version,
        history_version=history_version,
        current_version=table_version(spark, settings, PREDICTIONS_CURRENT),
    )


def _merge_current(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, history_version: int
) -> None:
    """Upsert the champion's rows for ``score_date`` from history into current."""
    source = (
        read_table(spark, settings, PREDICTIONS_HISTORY, version=history_version)
        .where(
            (F.col("score_date") == F.lit(score_date))
            & (F.col("model_name") == settings.model.name)
            & (F.col("model_role") == CHAMPION)
        )
        .select(*PREDICTIONS_CURRENT.columns)
    )
    current = DeltaTable.forPath(spark, table_path(settings, PREDICTIONS_CURRENT))
    (
        current.alias("t")
        .merge(source.alias("s"), "t.customer_id = s.customer_id AND t.model_name = s.model_name")
        .whenMatchedUpdateAll(condition="s.score_date >= t.score_date")
        .whenNotMatchedInsertAll()
        .execute()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score every customer for one date.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)
    from jobs.spark import get_spark

    settings = get_settings()
    result = score_date(get_spark(settings), settings, score_date=args.date, run_id=args.run_id)
    print(result)


if __name__ == "__main__":
    main()
