"""A drift feature that goes all-null on the scored date fails the blocking drift limit: the
night is held back by its audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from pyspark.sql import functions as F

from jobs.monitoring.score_runs import limit_failures
from jobs.ops.backfill import backfill
from jobs.platform.lake import read_table, table_path
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

D0, D1 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)
N = 600


def _null_column(spark: Any, s: Settings, *, as_of: dt.date, name: str) -> None:
    """Rewrite the ``as_of`` partition with ``name`` null on every row (the rest unchanged)."""
    day = read_table(spark, s, CUSTOMER_FEATURES).where(F.col("as_of_date") == F.lit(as_of))
    dtype = dict(day.dtypes)[name]
    nulled = day.withColumn(name, F.lit(None).cast(dtype)).select(*day.columns).toPandas()
    (
        spark.createDataFrame(nulled, CUSTOMER_FEATURES.ddl)
        .coalesce(1)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"as_of_date = DATE'{as_of.isoformat()}'")
        .save(table_path(s, CUSTOMER_FEATURES))
    )


def test_a_feature_gone_all_null_fails_the_drift_limit(
    spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    s = isolated(settings, tmp_path_factory.mktemp("monitoring_nulls"))
    booster = register_tiny_model(s, trees=15, train_rows=2_000)
    gains = booster.feature_importance(importance_type="gain")
    top = booster.feature_name()[int(np.argmax(gains))]  # always among the drift features
    write_feature_partition(spark, s, as_of=D0, customers=N, seed=1)
    write_feature_partition(spark, s, as_of=D1, customers=N, seed=2)  # no drift but the nulls
    _null_column(spark, s, as_of=D1, name=top)
    today = read_table(spark, s, CUSTOMER_FEATURES).where(F.col("as_of_date") == F.lit(D1))
    assert today.where(F.col(top).isNotNull()).count() == 0 and today.count() == N

    result = backfill(spark, s, start=D0, end=D1)  # each night written, audited, published

    assert [r.score_date for r in result.scored] == [D0]
    [held] = result.held  # D1 failed its audit: in history, not published
    run = held.run
    assert run.score_date == D1 and run.previous_score_date == D0
    assert run.coverage == 1.0  # every customer is still scored (LightGBM takes missing values)
    psi = run.feature_psi[top]
    assert psi is not None and psi > s.scoring.max_feature_psi
    over = [
        n for n, p in run.feature_psi.items() if p is not None and p > s.scoring.max_feature_psi
    ]
    assert over == [top]  # the other features are as stable as the night before
    assert set(held.failures) == {"drift"} and f"{top} PSI" in held.failures["drift"]
    assert limit_failures(run, s) == held.failures
