"""The one Dagster entry point: ``dagster dev -m pipelines.definitions``."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from pipelines.lakehouse.assets import build_lakehouse_assets
from pipelines.models.assets import build_model_assets
from pipelines.partitions import score_date_partitions
from pipelines.resources import LakescoreResource
from pipelines.scoring.assets import build_scoring_assets
from pipelines.serving.assets import build_serving_assets
from schemas.settings import Settings, get_settings

NIGHTLY_JOB = "nightly"


def build_definitions(
    settings: Settings | None = None, *, resource: LakescoreResource | None = None
) -> Definitions:
    settings = settings or get_settings()
    partitions = score_date_partitions(settings)
    lakehouse_assets, lakehouse_checks = build_lakehouse_assets(partitions)
    assets = [
        *lakehouse_assets,
        *build_model_assets(partitions),
        *build_scoring_assets(partitions),
        *build_serving_assets(partitions),
    ]
    nightly = define_asset_job(
        NIGHTLY_JOB,
        selection=AssetSelection.all(),
        partitions_def=partitions,
        description="ingest -> features -> contract -> champion -> score -> sync, for one score date",
    )
    schedule = build_schedule_from_partitioned_job(
        nightly, hour_of_day=2, minute_of_hour=0, name="nightly_schedule"
    )
    return Definitions(
        assets=assets,
        asset_checks=lakehouse_checks,
        jobs=[nightly],
        schedules=[schedule],
        resources={"lakescore": resource or LakescoreResource()},
    )


defs = build_definitions()
