"""When things run: the nightly scoring schedule, weekly retraining and weekly maintenance.

Every schedule and sensor starts RUNNING when the Dagster daemon first loads the
definitions (Dagster's own default is STOPPED: nothing would run on a fresh daemon),
unless the ``schedule:`` settings switch it off (``schedule_status`` / ``sensor_status``).
"""

from typing import Any

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from schemas.settings import ScheduleSettings, Settings

RETRAIN_RUN_CONFIG: dict[str, Any] = {"ops": {"models__champion": {"config": {"retrain": True}}}}


def schedule_status(cfg: ScheduleSettings, switch: bool) -> DefaultScheduleStatus:
    """RUNNING unless the schedules are off (``schedule.enabled``) or this one is."""
    on = cfg.enabled and switch
    return DefaultScheduleStatus.RUNNING if on else DefaultScheduleStatus.STOPPED


def sensor_status(cfg: ScheduleSettings, switch: bool) -> DefaultSensorStatus:
    """RUNNING unless everything is off, or the sensors are (``schedule.sensors_enabled``),
    or this one is."""
    on = cfg.enabled and cfg.sensors_enabled and switch
    return DefaultSensorStatus.RUNNING if on else DefaultSensorStatus.STOPPED


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
        default_status=schedule_status(cfg, cfg.nightly_enabled),
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
        default_status=schedule_status(cfg, cfg.retrain_enabled),
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
        default_status=schedule_status(cfg, cfg.maintenance_enabled),
        description=(
            "Weekly, clear of the night: silver.orders back in customer order, then retention."
        ),
    )
    return [nightly_schedule, retrain_schedule, maintenance_schedule]
