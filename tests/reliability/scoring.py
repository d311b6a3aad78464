"""Helpers (no tests) for the scoring fault scenarios: a lake of its own, the expected
scores computed outside Spark, and the figures (lost, duplicated, wrong) of a scored date."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.platform.lake import read_table, table_exists, table_version
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.integration.test_scoring_support import synthetic_features

REPO = Path(__file__).resolve().parents[2]
HISTORY_KEY = ("customer_id", "score_date", "model_name", "model_role")


def with_lake(settings: Settings, root: Path) -> Settings:
    """``settings`` with a lake of its own (the registry stays shared)."""
    return settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(root / "lake")})}
    )


def expected_scores(booster: lgb.Booster, *, customers: int, seed: int) -> dict[str, float]:
    """What the champion must give every customer of a feature partition (no Spark involved)."""
    frame = synthetic_features(customers=customers, seed=seed)
    x = frame[booster.feature_name()].astype(np.float64)
    return dict(zip(frame["customer_id"], booster.predict(x), strict=True))


@dataclass(frozen=True, kw_only=True)
class Figures:
    rows: int
    lost: int  # expected customers without a row
    duplicated: int  # rows beyond one per key
    wrong: int  # rows whose score differs from the expected one (or unexpected customers)
    run_ids: int  # distinct run ids among the rows


def history_figures(
    spark: SparkSession, settings: Settings, *, day: dt.date, expected: dict[str, float]
) -> Figures:
    """Champion rows of ``day`` in predictions.history against the expected scores."""
    frame = (
        read_table(spark, settings, PREDICTIONS_HISTORY)
        .where((F.col("score_date") == F.lit(day)) & (F.col("model_role") == "champion"))
        .select(*HISTORY_KEY, "score", "run_id")
        .toPandas()
    )
    return _figures(frame, keys=list(HISTORY_KEY), expected=expected)


def current_figures(
    spark: SparkSession, settings: Settings, *, day: dt.date, expected: dict[str, float]
) -> Figures:
    """predictions.current: one row per customer and model, the ``day`` scores for everyone."""
    frame: Any = (
        read_table(spark, settings, PREDICTIONS_CURRENT)
        .select("customer_id", "model_name", "score", "score_date", "run_id")
        .toPandas()
    )
    figures = _figures(frame, keys=["customer_id", "model_name"], expected=expected)
    stale = int((frame["score_date"] != day).sum())
    return Figures(
        rows=figures.rows,
        lost=figures.lost,
        duplicated=figures.duplicated,
        wrong=figures.wrong + stale,
        run_ids=figures.run_ids,
    )


def _figures(frame: Any, *, keys: list[str], expected: dict[str, float]) -> Figures:
    rows = len(frame)
    distinct = len(frame.drop_duplicates(subset=keys))
    scores = dict(zip(frame["customer_id"], frame["score"], strict=True))
    lost = sum(1 for c in expected if c not in scores)
    wrong = sum(1 for c, s in scores.items() if c not in expected or abs(s - expected[c]) > 1e-12)
    return Figures(
        rows=rows,
        lost=lost,
        duplicated=rows - distinct,
        wrong=wrong,
        run_ids=int(frame["run_id"].nunique()),
    )


def versions(spark: SparkSession, settings: Settings) -> tuple[int | None, int | None]:
    """The Delta versions of history and current (None: no table yet)."""
    return (
        table_version(spark, settings, PREDICTIONS_HISTORY)
        if table_exists(spark, settings, PREDICTIONS_HISTORY)
        else None,
        table_version(spark, settings, PREDICTIONS_CURRENT)
        if table_exists(spark, settings, PREDICTIONS_CURRENT)
        else None,
    )


def data_files(settings: Settings, table: str) -> list[Path]:
    return sorted(Path(settings.table_path(table)).rglob("*.parquet"))


def commits(settings: Settings, table: str) -> int:
    log = Path(settings.table_path(table)) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def start_scoring(
    settings: Settings, test_env: dict[str, str], *, day: dt.date, log_path: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """``python -m jobs.ops.score --date D`` in its own process, configured through the environment."""
    env = {
        **os.environ,
        **test_env,
        "LAKESCORE_LAKE__ROOT": settings.lake.root,
        "LAKESCORE_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
        "LAKESCORE_MLFLOW__ARTIFACT_ROOT": settings.mlflow.artifact_root,
        "LAKESCORE_MODEL__NAME": settings.model.name,
        "LAKESCORE_SPARK__MASTER": "local[1]",
        "LAKESCORE_SPARK__DRIVER_MEMORY": "1g",
        **extra,
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the conventional variable would win over ours
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.ops.score", "--date", day.isoformat()],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
