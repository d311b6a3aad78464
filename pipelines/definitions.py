"""The one Dagster entry point: ``dagster dev -m pipelines.definitions``.

The nightly and retrain jobs carry the tag ``lakescore/lease`` (``night``, ``retrain``):
the instance's run queue (``dagster.yaml`` at the repository root, installed in
``DAGSTER_HOME`` by the command line) runs at most one run per value, and a command-line
run (``execute_in_process``, which bypasses the queue) holds the lease of that name.

Runs the daemon or the UI launches execute with ``executor_for(settings)``
(``pipelines/executors.py``): every step in the run worker's process, on one Spark session,
for a local master; a process per step for a cluster master.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Backoff,
    Definitions,
    RetryPolicy,
    define_asset_job,
)

from jobs.platform import NIGHT_LEASE, RETRAIN_LEASE
from pipelines.alerts import build_run_failure_sensor, notify_failure
from pipelines.executors import executor_for
from pipelines.freshness import build_freshness_check, build_freshness_sensor
from pipelines.keys import CHAMPION_MODEL_KEY
from pipelines.lakehouse.assets import build_lakehouse_assets
from pipelines.lakehouse.maintenance import silver_maintenance
from pipelines.models.assets import build_model_assets
from pipelines.monitoring.assets import build_monitoring_assets
from pipelines.partitions import score_date_partitions
from pipelines.reports.assets import build_report_assets
from pipelines.resources import LakescoreResource
from pipelines.schedules import build_schedules, sensor_status
from pipelines.scoring.assets import build_scoring_assets
from pipelines.sensors import build_retrain_sensor
from pipelines.serving.assets import build_serving_assets
from schemas.settings import Settings, get_settings

NIGHTLY_JOB = "nightly"
RETRAIN_JOB = "retrain"
# One run per value at a time (dagster.yaml), and the lease a command-line run holds.
LEASE_TAG = "lakescore/lease"


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
        *build_report_assets(partitions),
        *build_monitoring_assets(partitions),
    ]
    retry = RetryPolicy(
        max_retries=settings.schedule.step_retries,
        delay=settings.schedule.step_retry_delay_s,
        backoff=Backoff.EXPONENTIAL,
    )
    nightly = define_asset_job(
        NIGHTLY_JOB,
        selection=AssetSelection.all(),
        partitions_def=partitions,
        hooks={notify_failure},
        op_retry_policy=retry,
        tags={LEASE_TAG: NIGHT_LEASE},
        description=(
            "ingest -> features -> contract -> champion -> score -> sync, and the backtests "
            "of matured score dates, for one score date"
        ),
    )
    retrain = define_asset_job(
        RETRAIN_JOB,
        selection=AssetSelection.assets(CHAMPION_MODEL_KEY),
        partitions_def=partitions,
        hooks={notify_failure},
        tags={LEASE_TAG: RETRAIN_LEASE},
        description="Train a challenger for the score date; the gate decides promotion.",
    )
    # Per score date against the schedule (pipelines/freshness.py): a night of a past date
    # passes it, a missed night fails it once its deadline passed.
    freshness = build_freshness_check(settings)
    freshness_sensor = build_freshness_sensor(
        freshness,
        settings,
        default_status=sensor_status(settings.schedule, settings.schedule.freshness_sensor_enabled),
    )
    return Definitions(
        assets=assets,
        asset_checks=[*lakehouse_checks, freshness],
        jobs=[nightly, retrain, silver_maintenance],
        schedules=build_schedules(
            nightly=nightly, retrain=retrain, maintenance=silver_maintenance, settings=settings
        ),
        sensors=[
            freshness_sensor,
            build_retrain_sensor(retrain=retrain, settings=settings),
            build_run_failure_sensor(settings),
        ],
        resources={"lakescore": resource or LakescoreResource()},
        # Every job without one of its own (all of them, and the UI's asset materializations).
        executor=executor_for(settings),
    )


defs = build_definitions()
