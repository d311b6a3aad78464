"""A real Dagster run: a drifted night fails its blocking check and the downstream sync never runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from jobs.scoring.run import score_date
from schemas.settings import Settings
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

D0, D1 = dt.date(2024, 7, 1), dt.date(2024, 7, 2)


def test_drifted_night_blocks_the_sync(spark: Any, settings: Settings, tmp_path: Path) -> None:
    from dagster import (
        DagsterInstance,
        DailyPartitionsDefinition,
        asset,
        materialize,
    )

    from pipelines.keys import CURRENT_KEY
    from pipelines.resources import LakescoreResource
    from pipelines.scoring.assets import build_scoring_assets

    s = isolated(settings, tmp_path)
    register_tiny_model(s, trees=10)
    write_feature_partition(spark, s, as_of=D0, customers=400, seed=1)
    write_feature_partition(spark, s, as_of=D1, customers=400, seed=2, shift=3.0)
    score_date(spark, s, score_date=D0)  # yesterday: the drift reference

    partitions = DailyPartitionsDefinition(start_date="2024-06-01", end_offset=1)
    synced: list[str] = []

    @asset(deps=[CURRENT_KEY], partitions_def=partitions)
    def sync_probe() -> None:
        synced.append("ran")

    resource = LakescoreResource(
        lake_root=s.lake.root,
        mlflow_tracking_uri=s.mlflow.tracking_uri,
        mlflow_artifact_root=s.mlflow.artifact_root,
    )
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [*build_scoring_assets(partitions), sync_probe],
            partition_key=D1.isoformat(),
            resources={"lakescore": resource},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["score_coverage"].passed
    assert not checks["score_drift"].passed
    assert "PSI" in (checks["score_drift"].description or "")
    assert synced == []
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    assert CURRENT_KEY in {k for k in materialized if k is not None}
