"""Scoring on real Spark + Delta and a real MLflow registry (tiny synthetic model)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs.platform.lake import (
    ensure_table,
    file_statistics,
    read_table,
    table_exists,
    table_path,
    table_version,
)
from jobs.platform.registry import configure_mlflow, load_booster
from jobs.scoring.current import newest_score_date
from jobs.scoring.run import ScoreResult, ScoringError, score_date
from schemas.models import ModelDefinition
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.integration.test_scoring_support import (
    register_tiny_model,
    synthetic_features,
    write_feature_partition,
)

pytestmark = pytest.mark.integration

D0, D1 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
N = 1_500
# An additional model on three features, not in catalogue order.
SECOND_FEATURES = ("monetary_365d", "recency_days", "frequency_30d")


def isolated(settings: Settings, root: Path, *, model: str = "purchase_30d") -> Settings:
    """The session settings with this module's own lake and registry."""
    return settings.model_copy(
        update={
            "lake": settings.lake.model_copy(update={"root": str(root / "lake")}),
            "mlflow": settings.mlflow.model_copy(
                update={
                    "tracking_uri": f"sqlite:///{root}/mlflow/mlflow.db",
                    "artifact_root": str(root / "mlflow" / "artifacts"),
                }
            ),
            "model": settings.model.model_copy(update={"name": model}),
        }
    )


@pytest.fixture(scope="module")
def lake(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = isolated(settings, tmp_path_factory.mktemp("score"))
    register_tiny_model(s, trees=15, train_rows=2_000)
    # D0 has one customer more than D1: a customer who is not scored on D1 any more.
    write_feature_partition(spark, s, as_of=D0, customers=N + 1, seed=1)
    write_feature_partition(spark, s, as_of=D1, customers=N, seed=2)
    return s


@pytest.fixture(scope="module")
def first_nights(spark: Any, lake: Settings) -> tuple[ScoreResult, ScoreResult]:
    return score_date(spark, lake, score_date=D0), score_date(spark, lake, score_date=D1)


def _history(spark: Any, s: Settings, day: dt.date) -> Any:
    return read_table(spark, s, PREDICTIONS_HISTORY).where(F.col("score_date") == day)


def test_a_night_writes_every_customer_with_lineage(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    r0, r1 = first_nights
    assert (r0.current_mode, r1.current_mode) == ("insert", "replace")
    assert (r0.rows, r1.rows) == (N + 1, N)
    rows = _history(spark, lake, D1).collect()
    assert len(rows) == N == len({r.customer_id for r in rows})
    assert {(r.model_version, r.model_role, r.run_id) for r in rows} == {
        ("1", "champion", r1.run_id)
    }
    assert {r.feature_table_version for r in rows} == {r1.feature_table_version}
    assert all(0.0 < r.score < 1.0 for r in rows)
    current = read_table(spark, lake, PREDICTIONS_CURRENT).collect()
    assert len(current) == N + 1 == len({r.customer_id for r in current})
    by_date = {d: sum(r.score_date == d for r in current) for d in (D0, D1)}
    assert by_date == {D0: 1, D1: N}  # the customer missing on D1 keeps the D0 score
    scores = {r.customer_id: r.score for r in rows}
    assert all(scores[r.customer_id] == r.score for r in current if r.score_date == D1)


def test_scores_come_from_compiled_trees_equal_to_lightgbm(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    _, r1 = first_nights
    assert r1.predictors == {"purchase_30d/champion": {"compiled": N}}  # counted in the tasks
    configure_mlflow(lake)
    booster = load_booster(model_name="purchase_30d", version=r1.model_version)
    features = synthetic_features(customers=N, seed=2)
    expected = booster.predict(features[booster.feature_name()].astype("float64"))
    got = {r.customer_id: r.score for r in _history(spark, lake, D1).collect()}
    diffs = [abs(got[c] - e) for c, e in zip(features["customer_id"], expected, strict=True)]
    assert len(got) == N
    assert max(diffs) <= 1e-12


def test_newest_score_date_comes_from_the_delta_log(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    files = file_statistics(lake, PREDICTIONS_CURRENT)
    assert files and {f["partition.model_name"] for f in files} == {"purchase_30d"}
    assert newest_score_date(spark, lake, model_name="purchase_30d") == D1
    assert newest_score_date(spark, lake, model_name="no_such_model") is None


def test_prediction_files_keep_statistics_only_for_the_columns_read_by_them(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    for spec, kept in (
        (PREDICTIONS_HISTORY, {"customer_id", "score"}),
        (PREDICTIONS_CURRENT, {"customer_id", "score_date", "score"}),
    ):
        files = file_statistics(lake, spec)
        assert files
        for f in files:
            with_stats = {k[4:] for k, v in f.items() if k.startswith("max.") and v is not None}
            assert with_stats == kept, spec.name


def test_existing_tables_gain_changed_properties_once(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    s = isolated(settings, tmp_path)
    # Created from a spec without the statistics property, as a table made before it existed.
    ensure_table(spark, s, dataclasses.replace(PREDICTIONS_HISTORY, stats_columns=()))
    ensure_table(spark, s, PREDICTIONS_HISTORY)
    detail = DeltaTable.forPath(spark, table_path(s, PREDICTIONS_HISTORY)).detail().first()
    assert detail is not None
    assert detail["properties"] == {"delta.dataSkippingStatsColumns": "customer_id,score"}
    version = table_version(spark, s, PREDICTIONS_HISTORY)
    ensure_table(spark, s, PREDICTIONS_HISTORY)
    assert table_version(spark, s, PREDICTIONS_HISTORY) == version == 1


def test_rerun_replaces_exactly_that_dates_rows(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    before_d0 = sorted(_history(spark, lake, D0).collect())
    again = score_date(spark, lake, score_date=D1)
    d1 = _history(spark, lake, D1).collect()
    assert len(d1) == N
    assert {r.run_id for r in d1} == {again.run_id}
    assert sorted(_history(spark, lake, D0).collect()) == before_d0


def test_an_older_date_never_overwrites_a_newer_one(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    before = {r.customer_id: r for r in read_table(spark, lake, PREDICTIONS_CURRENT).collect()}
    older = score_date(spark, lake, score_date=D0)  # a backfill of the past
    assert older.current_mode == "merge"
    after = {r.customer_id: r for r in read_table(spark, lake, PREDICTIONS_CURRENT).collect()}
    assert after.keys() == before.keys()
    newer = [c for c, r in before.items() if r.score_date == D1]
    assert len(newer) == N
    assert all(after[c] == before[c] for c in newer)


def test_shadow_scores_the_challenger_into_history_only(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    s = isolated(settings, tmp_path)
    register_tiny_model(s, trees=10, seed=1)
    register_tiny_model(s, trees=12, seed=2, alias="challenger")
    write_feature_partition(spark, s, as_of=D1, customers=300, seed=3)
    result = score_date(spark, s, score_date=D1)
    assert (result.model_version, result.challenger_version) == ("1", "2")
    history = _history(spark, s, D1).groupBy("model_role", "model_version").count().collect()
    assert {(r.model_role, r.model_version, r["count"]) for r in history} == {
        ("champion", "1", 300),
        ("challenger", "2", 300),
    }
    current = read_table(spark, s, PREDICTIONS_CURRENT)
    assert [r.model_version for r in current.select("model_version").distinct().collect()] == ["1"]
    assert current.count() == 300


def _versions(spark: Any, s: Settings) -> tuple[int | None, ...]:
    return tuple(
        table_version(spark, s, spec) if table_exists(spark, s, spec) else None
        for spec in (PREDICTIONS_HISTORY, PREDICTIONS_CURRENT)
    )


def test_missing_partition_fails_before_writing(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    before = _versions(spark, lake)
    with pytest.raises(ScoringError, match=r"no feature partition .*as_of_date=2024-02-01"):
        score_date(spark, lake, score_date=dt.date(2024, 2, 1))
    assert _versions(spark, lake) == before


def test_missing_champion_fails_before_writing(
    spark: Any, lake: Settings, first_nights: tuple[ScoreResult, ScoreResult]
) -> None:
    before = _versions(spark, lake)
    nameless = lake.model_copy(
        update={"model": lake.model.model_copy(update={"name": "no_such_model"})}
    )
    with pytest.raises(ScoringError, match="'no_such_model' has no 'champion' alias"):
        score_date(spark, nameless, score_date=D1)
    assert _versions(spark, lake) == before


@pytest.mark.reliability
def test_features_that_do_not_fit_the_model_fail_before_writing(
    spark: Any,
    lake: Settings,
    first_nights: tuple[ScoreResult, ScoreResult],
    reliability_report: Any,
) -> None:
    before = _versions(spark, lake)
    rows_before = read_table(spark, lake, PREDICTIONS_HISTORY).count()
    other = lake.model_copy(update={"model": lake.model.model_copy(update={"name": "misfit"})})
    register_tiny_model(other, trees=5, drop_feature="recency_days")
    with pytest.raises(ScoringError, match=r"needs features missing .*recency_days_v2"):
        score_date(spark, other, score_date=D1)
    rows_after = read_table(spark, lake, PREDICTIONS_HISTORY).count()
    reliability_report.record(
        scenario="7 champion does not fit the features",
        load=f"{N:,} customers",
        faults=1,
        rows_lost=max(0, rows_before - rows_after),
        rows_duplicated=max(0, rows_after - rows_before),
        detail="scoring refused before writing: Delta versions unchanged",
    )
    assert _versions(spark, lake) == before


def test_every_configured_model_with_a_champion_is_scored(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    s = isolated(settings, tmp_path)
    s = s.model_copy(
        update={
            "model": s.model.model_copy(
                update={
                    "additional": [
                        ModelDefinition(name="second", features=SECOND_FEATURES),
                        ModelDefinition(name="untrained", label="spend", horizon_days=90),
                    ]
                }
            )
        }
    )
    register_tiny_model(s, trees=10, seed=1)
    second = s.model_copy(update={"model": s.model.model_copy(update={"name": "second"})})
    booster = register_tiny_model(second, trees=8, seed=4, features=list(SECOND_FEATURES))
    register_tiny_model(second, trees=9, seed=5, features=list(SECOND_FEATURES), alias="challenger")
    write_feature_partition(spark, s, as_of=D1, customers=300, seed=3)

    result = score_date(spark, s, score_date=D1)

    assert result.models == {"purchase_30d": "1", "second": "1"}
    assert result.skipped_models == ("untrained",)
    assert (result.model_name, result.model_version, result.rows) == ("purchase_30d", "1", 300)
    history = _history(spark, s, D1).groupBy("model_name", "model_role", "model_version").count()
    assert {tuple(r) for r in history.collect()} == {
        ("purchase_30d", "champion", "1", 300),
        ("second", "champion", "1", 300),
        ("second", "challenger", "2", 300),
    }
    current = read_table(spark, s, PREDICTIONS_CURRENT).collect()
    assert len(current) == 600 == len({(r.customer_id, r.model_name) for r in current})
    assert {(r.model_name, r.model_version) for r in current} == {
        ("purchase_30d", "1"),
        ("second", "1"),
    }
    # The second model scored on its own feature columns, in its own order.
    features = synthetic_features(customers=300, seed=3).set_index("customer_id")
    expected = booster.predict(features[list(SECOND_FEATURES)].astype("float64"))
    got = {r.customer_id: r.score for r in current if r.model_name == "second"}
    assert [got[c] for c in features.index] == pytest.approx(list(expected))

    again = score_date(spark, s, score_date=D1)  # a re-run replaces both models' rows
    assert _history(spark, s, D1).count() == 900
    assert again.current_modes == {"purchase_30d": "replace", "second": "replace"}
    assert read_table(spark, s, PREDICTIONS_CURRENT).count() == 600
