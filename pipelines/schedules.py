"""When things run: the nightly scoring schedule, weekly retraining and weekly maintenance."""

from typing import Any

from dagster import (
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from schemas.settings import Settings

RETRAIN_RUN_CONFIG: dict[str, Any] = {"ops": {"models__champion": {"config": {"retrain": True}}}}


def build_schedules(
    *,
    nightly: UnresolvedAssetJobDefinition,
    retrain: UnresolvedAssetJobDefinition,
    maintenance: JobDefinition,
    settings: Settings,
) -> list[ScheduleDefinition]:
    cfg = settings.schedule

    @schedule(
        name="nightly_schedule",
        job=nightly,
        cron_schedule=cfg.nightly_cron,
        execution_timezone=cfg.timezone,
        description="Every night: score the day that starts (features use all orders before it).",
    )
    def nightly_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        day = context.scheduled_execution_time.date().isoformat()
        return RunRequest(run_key=f"nightly-{day}", partition_key=day)

    @schedule(
        name="retrain_schedule",
        job=retrain,
        cron_schedule=cfg.retrain_cron,
        execution_timezone=cfg.timezone,
        description="Weekly: train a challenger; the gate decides whether it becomes champion.",
    )
    def retrain_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        day = context.scheduled_execution_time.date().isoformat()
        return RunRequest(
            run_key=f"retrain-{day}", partition_key=day, run_config=RETRAIN_RUN_CONFIG
        )

    maintenance_schedule = ScheduleDefinition(
        name="maintenance_schedule",
        job=maintenance,
        cron_schedule=cfg.maintenance_cron,
        execution_timezone=cfg.timezone,
        description="Weekly, clear of the night: silver.orders back in customer order.",
    )
    return [nightly_schedule, retrain_schedule, maintenance_schedule]
