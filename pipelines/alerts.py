"""Run-failure reporting: failed steps and failed runs are logged and, when configured,
posted to a webhook (``alerts.webhook_url``) as JSON.

Two reporters, one alert per failure:

- ``notify_failure``, a failure hook on every job, reports a failed step from inside
  the run (``event: lakescore.step_failed``).
- ``run_failure_alert_sensor``, a run-failure sensor over every job of the code location,
  reports a failed run (``event: lakescore.run_failed``) unless every step that failed in
  it was already reported by the hook. So a run that dies outside a step (launcher or
  executor failure, a run worker killed, a run that never started) is reported once, by the
  sensor; a step that failed in the ordinary way is reported once, by the hook; and a step
  whose hook never ran (its process crashed) is named in the sensor's alert.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    HookContext,
    RunFailureSensorContext,
    SensorDefinition,
    failure_hook,
    run_failure_sensor,
)
from dagster._utils.error import SerializableErrorInfo

from pipelines.resources import LakescoreResource
from pipelines.schedules import sensor_status
from schemas.settings import Settings

log = logging.getLogger("lakescore.alerts")
RUN_FAILURE_SENSOR = "run_failure_alert_sensor"
MAX_ERROR_CHARS = 2000


def post_webhook(url: str, payload: dict[str, Any], *, timeout_s: float) -> bool:
    """POST ``payload`` as JSON; never raises (an alert must not mask the original failure)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.warning("alert webhook %s failed: %s", url, exc)
        return False


@failure_hook(required_resource_keys={"lakescore"})
def notify_failure(context: HookContext) -> None:
    settings = context.resources.lakescore.settings()
    error = context.op_exception
    payload = {
        "event": "lakescore.step_failed",
        "job": context.job_name,
        "run_id": context.run_id,
        "step": context.step_key,
        "error_type": type(error).__name__ if error else None,
        "error": str(error)[:MAX_ERROR_CHARS] if error else None,
    }
    context.log.error(f"step {context.step_key} failed: {payload['error']}")
    if settings.alerts.webhook_url:
        post_webhook(settings.alerts.webhook_url, payload, timeout_s=settings.alerts.timeout_s)


def root_error(error: SerializableErrorInfo | None) -> str | None:
    """The innermost cause's ``Type: message`` (Dagster wraps a step's own exception)."""
    if error is None:
        return None
    while error.cause is not None:
        error = error.cause
    return error.message.strip() or error.cls_name


def unreported_steps(instance: DagsterInstance, run_id: str) -> tuple[list[str], dict[str, str]]:
    """The steps that failed in the run, and the errors of those ``notify_failure`` did not
    report (no completed hook event for the step: a job without the hook, or a step process
    that died before the hook ran)."""
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.HOOK_COMPLETED}
    ).records
    failed: dict[str, str] = {}
    reported: set[str] = set()
    hook_name = f'"{notify_failure.name}"'  # Dagster names the hook in the event's message
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = root_error(event.step_failure_data.error)
            failed[event.step_key] = (error or event.message or "")[:MAX_ERROR_CHARS]
        elif hook_name in (event.message or ""):
            reported.add(event.step_key)
    unreported = {step: error for step, error in failed.items() if step not in reported}
    return list(failed), unreported


def run_partition(run: DagsterRun) -> str | None:
    """The run's partition, or its range (``start...end``) for a ranged backfill run."""
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start and end else None


def run_failure_payload(
    context: RunFailureSensorContext, *, unreported: dict[str, str]
) -> dict[str, Any]:
    """What the webhook gets for a failed run: the job, run id, partition and why it failed
    (the run's failure message and its error's root cause; the steps no hook reported)."""
    run = context.dagster_run
    event = context.failure_event
    data = event.event_specific_data
    reason = getattr(data, "failure_reason", None)
    parts = [event.message or "", root_error(getattr(data, "error", None)) or ""]
    message = " ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
    return {
        "event": "lakescore.run_failed",
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": run_partition(run),
        "reason": reason.value if reason is not None else None,
        "error": message[:MAX_ERROR_CHARS] or None,
        "steps_not_reported": unreported,
    }


def build_run_failure_sensor(settings: Settings) -> SensorDefinition:
    cfg = settings.schedule

    @run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=sensor_status(cfg, cfg.run_failure_sensor_enabled),
        description=(
            "Posts every failed run of this code location to alerts.webhook_url, unless each "
            "failed step in it was already posted by the notify_failure hook."
        ),
    )
    def run_failure_alert_sensor(
        context: RunFailureSensorContext, lakescore: LakescoreResource
    ) -> None:
        run = context.dagster_run
        failed, unreported = unreported_steps(context.instance, run.run_id)
        if failed and not unreported:
            context.log.info(
                f"run {run.run_id} of {run.job_name} failed in {', '.join(failed)}: "
                "already reported by the step hook"
            )
            return
        payload = run_failure_payload(context, unreported=unreported)
        context.log.error(f"run {run.run_id} of {run.job_name} failed: {payload['error']}")
        current = lakescore.settings()
        if current.alerts.webhook_url:
            post_webhook(current.alerts.webhook_url, payload, timeout_s=current.alerts.timeout_s)

    return run_failure_alert_sensor
