"""Write, audit, publish on a real Dagster run: a night that fails its audit reaches history
(inspectable) but not ``predictions.current`` nor the sync downstream; after a review it
can be published, and the next night's drift is judged against the last published night."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.monitoring.score_runs import held_dates, previous_score_date
from jobs.ops.score import AuditFailedError, held_runs, publish_held, score_audited
from jobs.platform import read_table, table_version
from jobs.scoring import ScoringError
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY, PUBLICATIONS
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

D0, D1, D2 = dt.date(2024, 7, 1), dt.date(2024, 7, 2), dt.date(2024, 7, 3)
N = 400


def _current(spark: Any, s: Settings) -> list[tuple[Any, ...]]:
    rows = read_table(spark, s, PREDICTIONS_CURRENT).collect()
    return sorted((r.customer_id, r.model_name, r.score_date, r.score, r.run_id) for r in rows)


def _materialize(s: Settings, day: dt.date, synced: list[str]) -> Any:
    from dagster import DagsterInstance, DailyPartitionsDefinition, asset, materialize

    from pipelines.keys import CURRENT_KEY
    from pipelines.resources import LakescoreResource
    from pipelines.scoring.assets import build_scoring_assets

    partitions = DailyPartitionsDefinition(start_date="2024-06-01", end_offset=1)

    @asset(deps=[CURRENT_KEY], partitions_def=partitions)
    def sync_probe() -> None:
        synced.append("ran")

    resource = LakescoreResource(
        lake_root=s.lake.root,
        mlflow_tracking_uri=s.mlflow.tracking_uri,
        mlflow_artifact_root=s.mlflow.artifact_root,
    )
    with DagsterInstance.ephemeral() as instance:
        return materialize(
            [*build_scoring_assets(partitions), sync_probe],
            partition_key=day.isoformat(),
            resources={"lakescore": resource},
            instance=instance,
            raise_on_error=False,
        )


@pytest.fixture(scope="module")
def drifted(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = isolated(settings, tmp_path_factory.mktemp("audit"))
    register_tiny_model(s, trees=10)
    write_feature_partition(spark, s, as_of=D0, customers=N, seed=1)
    write_feature_partition(spark, s, as_of=D1, customers=N, seed=2, shift=3.0)
    score_audited(spark, s, score_date=D0)  # yesterday: published, the drift reference
    before = _current(spark, s)
    synced: list[str] = []
    result = _materialize(s, D1, synced)
    return s, before, result, synced


def test_a_failed_audit_publishes_nothing(spark: Any, drifted: Any) -> None:
    from pipelines.keys import CURRENT_KEY, HISTORY_KEY

    s, before, result, synced = drifted
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["score_coverage"].passed and checks["score_rows"].passed
    assert not checks["score_drift"].passed
    assert "PSI" in (checks["score_drift"].description or "")
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    assert HISTORY_KEY in materialized and CURRENT_KEY not in materialized
    assert synced == []
    assert _current(spark, s) == before  # exactly the night before
    assert {r[2] for r in before} == {D0}


def test_the_held_night_stays_inspectable_and_is_not_the_next_drift_reference(
    spark: Any, drifted: Any
) -> None:
    s, _, result, _ = drifted
    held = read_table(spark, s, PREDICTIONS_HISTORY).where(F.col("score_date") == D1)
    assert held.where(F.col("model_role") == "champion").count() == N
    assert {r.run_id for r in held.select("run_id").distinct().collect()} == {result.run_id}
    [run] = held_runs(spark, s, score_date=D1)
    assert run.run_id == result.run_id and "drift" in (run.audit_json or "")
    assert held_dates(spark, s) == [D1]
    assert previous_score_date(spark, s, score_date=D2) == D0


def test_a_reviewed_held_night_is_published_with_its_reason(spark: Any, drifted: Any) -> None:
    s, _, result, _ = drifted
    with pytest.raises(ScoringError, match="reason"):
        publish_held(spark, s, score_date=D1, reason=" ")
    run, publication = publish_held(spark, s, score_date=D1, reason="promo day, reviewed")
    assert run.run_id == result.run_id
    current = _current(spark, s)
    assert {r[2] for r in current} == {D1} and {r[4] for r in current} == {result.run_id}
    assert publication.current_version == table_version(spark, s, PREDICTIONS_CURRENT)
    how = read_table(spark, s, PUBLICATIONS).where(F.col("run_id") == result.run_id).collect()
    assert [r.how for r in how] == ["reviewed: promo day, reviewed"]
    assert held_dates(spark, s) == []
    with pytest.raises(ScoringError, match="no held"):
        publish_held(spark, s, score_date=D1, reason="again")


def test_a_night_missing_rows_fails_the_row_audit(
    spark: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row lost between the feature partition and history is caught by counting both."""
    import jobs.scoring.run as run_module

    s = isolated(settings, tmp_path)
    register_tiny_model(s, trees=5)
    write_feature_partition(spark, s, as_of=D0, customers=N, seed=1)
    score_audited(spark, s, score_date=D0)
    before = _current(spark, s)
    write_feature_partition(spark, s, as_of=D1, customers=N, seed=1)
    real = run_module.prediction_rows
    monkeypatch.setattr(
        run_module,
        "prediction_rows",
        lambda *a, **k: real(*a, **k).where(F.col("customer_id") != "C0000007"),
    )
    with pytest.raises(AuditFailedError, match=rf"wrote {N - 1} rows for {N} customers"):
        score_audited(spark, s, score_date=D1)
    assert _current(spark, s) == before
