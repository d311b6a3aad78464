"""Scoring reads the feature partition's row groups with pyarrow where that read is exact,
and through Spark wherever it is not (jobs/scoring/files.py), on real Spark + Delta."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.platform.lake import read_table, table_path, table_version
from jobs.scoring.files import feature_row_groups
from jobs.scoring.models import feature_columns, resolve_models
from jobs.scoring.run import ScoringError, feature_partition, prediction_rows, score_date
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_HISTORY
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

D0, D1 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
N = 4_000


@pytest.fixture(scope="module")
def lake(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = isolated(settings, tmp_path_factory.mktemp("score-files"))
    register_tiny_model(s, trees=10, train_rows=2_000)
    write_feature_partition(spark, s, as_of=D0, customers=N + 7, seed=1)
    # Small row groups: one file read by several tasks, as a large partition is.
    write_feature_partition(spark, s, as_of=D1, customers=N, seed=2, row_group_bytes=64 * 1024)
    return s


def _columns(s: Settings) -> list[str]:
    models, _ = resolve_models(s, error=ScoringError)
    return feature_columns(models)


def test_row_groups_of_one_partition_at_one_version(spark: Any, lake: Settings) -> None:
    version = table_version(spark, lake, CUSTOMER_FEATURES)
    groups = feature_row_groups(lake, version=version, score_date=D1, columns=_columns(lake))
    assert groups is not None
    assert len({g.path for g in groups}) == 1 and len(groups) > 2
    assert all("as_of_date=2024-05-02" in g.path for g in groups)
    assert sorted(g.index for g in groups) == list(range(len(groups)))
    assert sum(g.rows for g in groups) == N
    # A version before D1 was written has no D1 files.
    assert feature_row_groups(lake, version=version - 1, score_date=D1, columns=[]) == []


def test_pyarrow_reads_score_exactly_what_spark_reads(spark: Any, lake: Settings) -> None:
    models, _ = resolve_models(lake, error=ScoringError)
    features, version = feature_partition(spark, lake, score_date=D1)
    groups = feature_row_groups(lake, version=version, score_date=D1, columns=_columns(lake))
    assert groups is not None

    def scores(**kwargs: Any) -> dict[str, float]:
        rows = prediction_rows(
            spark,
            features,
            models=models,
            score_date=D1,
            run_id="r",
            feature_version=version,
            batch_rows=1_000,
            **kwargs,
        ).collect()
        by_customer = {r.customer_id: r.score for r in rows}
        assert len(by_customer) == len(rows)  # every customer once
        return by_customer

    through_pyarrow = scores(row_groups=groups)
    through_spark = scores()
    assert len(through_pyarrow) == N
    assert through_pyarrow == through_spark


def test_a_night_reads_with_pyarrow_by_default_and_with_spark_when_off(
    spark: Any, lake: Settings
) -> None:
    fast = score_date(spark, lake, score_date=D1)
    off = lake.model_copy(
        update={"scoring": lake.scoring.model_copy(update={"pyarrow_feature_reads": False})}
    )
    plain = score_date(spark, off, score_date=D1)
    assert (fast.feature_reader, plain.feature_reader) == ("pyarrow", "spark")
    assert fast.rows == plain.rows == N
    history = read_table(spark, lake, PREDICTIONS_HISTORY).where(F.col("score_date") == D1)
    by_run = {
        run: {r.customer_id: r.score for r in history.where(F.col("run_id") == run).collect()}
        for run in (fast.run_id, plain.run_id)
    }
    assert by_run[fast.run_id] == {}  # the re-run replaced D1's rows
    assert len(by_run[plain.run_id]) == N


def test_columns_missing_from_the_files_fall_back_to_spark(spark: Any, lake: Settings) -> None:
    version = table_version(spark, lake, CUSTOMER_FEATURES)
    columns = [*_columns(lake), "added_after_these_files"]
    assert feature_row_groups(lake, version=version, score_date=D1, columns=columns) is None


def test_a_relative_lake_root_lists_absolute_paths(
    spark: Any, lake: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Executors do not share the driver's working directory."""
    monkeypatch.chdir(tmp_path)
    relative = lake.model_copy(
        update={"lake": lake.lake.model_copy(update={"root": os.path.relpath(lake.lake.root)})}
    )
    assert not os.path.isabs(relative.lake.root)
    version = table_version(spark, lake, CUSTOMER_FEATURES)
    groups = feature_row_groups(relative, version=version, score_date=D1, columns=_columns(lake))
    assert groups and all(os.path.isabs(g.path) and os.path.exists(g.path) for g in groups)


def test_a_lake_off_the_local_filesystem_is_read_by_spark(lake: Settings) -> None:
    remote = lake.model_copy(
        update={"lake": lake.lake.model_copy(update={"root": "s3a://bucket/lake"})}
    )
    assert feature_row_groups(remote, version=0, score_date=D1, columns=[]) is None


def test_deleted_rows_are_never_scored(spark: Any, settings: Settings, tmp_path: Path) -> None:
    """Deletion vectors: a file's rows are not all live, so pyarrow cannot read it alone."""
    s = isolated(settings, tmp_path)
    register_tiny_model(s, trees=5, train_rows=1_000)
    write_feature_partition(spark, s, as_of=D1, customers=300, seed=3)
    path = table_path(s, CUSTOMER_FEATURES)
    spark.sql(
        f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )
    spark.sql(f"DELETE FROM delta.`{path}` WHERE customer_id = 'C0000007'")
    version = table_version(spark, s, CUSTOMER_FEATURES)
    assert feature_row_groups(s, version=version, score_date=D1, columns=_columns(s)) is None
    result = score_date(spark, s, score_date=D1)
    assert (result.feature_reader, result.rows) == ("spark", 299)
    scored = {r.customer_id for r in read_table(spark, s, PREDICTIONS_HISTORY).collect()}
    assert len(scored) == 299 and "C0000007" not in scored
