"""The freshness of ``predictions/history``, judged per score date against the schedule.

The night of score date D runs at the nightly schedule's tick on day D
(``schedule.nightly_cron``) and is due by the next ``schedule.freshness_deadline_cron`` tick.
The check ``freshness_check`` answers, depending on where it runs:

- in a run of partition D (a night, a backfill, the demo): is D written? Judged against D's own
  deadline, it is late when written after it (a backfill of a past date always is: the
  metadata say by how much) but not stale: a night of a past date passes. Its description
  also says whether the latest night due by now is written, without failing on it.
- outside a partitioned run (the sensor's runs, the UI's "execute"): is the latest night due by
  now (or a later one) written? A night the schedule missed fails here once its deadline
  passed, and passes again when a run writes it.

Dagster's ``build_time_partition_freshness_checks`` only has the second answer, also inside
a run, so every night of a past date failed it; Dagster's ``FreshnessPolicy`` judges the
asset's last update, whatever its partition. ``predictions_freshness_sensor`` runs the check
whenever its last evaluation did not judge the night due now: after each deadline, and after a
run of a past date (whose evaluation judged that date only).
"""

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._utils.schedules import get_next_cron_tick, reverse_cron_string_iterator

from pipelines.keys import HISTORY_KEY
from schemas.settings import ScheduleSettings, Settings

CHECK_NAME = "freshness_check"
SENSOR_NAME = "predictions_freshness_sensor"
# Nightly ticks looked back over for the latest one past its deadline (a weekly schedule
# needs a few; a daily one, one or two).
_LOOKBACK_TICKS = 64


def now() -> dt.datetime:
    """The wall clock (tests move it)."""
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- the schedule's deadlines


def _deadline_after(tick: dt.datetime, cfg: ScheduleSettings) -> dt.datetime:
    return get_next_cron_tick(
        cfg.freshness_deadline_cron, tick + dt.timedelta(seconds=1), cfg.timezone
    )


def night_deadline(day: dt.date, cfg: ScheduleSettings) -> dt.datetime | None:
    """When the night of score date ``day`` is due: the first deadline tick after the nightly
    schedule's tick on that day; None when the schedule has no tick that day."""
    tz = ZoneInfo(cfg.timezone)
    tick = get_next_cron_tick(
        cfg.nightly_cron, dt.datetime.combine(day, dt.time(), tz), cfg.timezone
    )
    if tick.astimezone(tz).date() != day:
        return None
    return _deadline_after(tick, cfg)


def latest_due(at: dt.datetime, cfg: ScheduleSettings) -> dt.date | None:
    """The score date of the latest night whose deadline passed by ``at`` (None: none yet)."""
    tz = ZoneInfo(cfg.timezone)
    ticks = reverse_cron_string_iterator(at.timestamp(), cfg.nightly_cron, cfg.timezone)
    for _, tick in zip(range(_LOOKBACK_TICKS), ticks, strict=False):
        if _deadline_after(tick, cfg) <= at:
            day = tick.astimezone(tz).date()
            return day if day >= dt.date.fromisoformat(cfg.start_date) else None
    return None


def _written(instance: DagsterInstance, days: list[dt.date]) -> Any:
    """The latest materialization of one of ``days``' partitions, or None."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=HISTORY_KEY, asset_partitions=[d.isoformat() for d in days]),
        limit=1,
    ).records
    return records[0] if records else None


def _at(moment: dt.datetime | None, cfg: ScheduleSettings) -> str:
    if moment is None:
        return "no deadline (not a night of the schedule)"
    return f"{moment.astimezone(ZoneInfo(cfg.timezone)):%Y-%m-%d %H:%M} {cfg.timezone}"


def _span(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"


# ---------------------------------------------------------------- the check's two answers


def judge_partition(
    instance: DagsterInstance, day: dt.date, *, at: dt.datetime, cfg: ScheduleSettings
) -> AssetCheckResult:
    """Inside a run of ``day``: is its partition written? Judged against its own deadline."""
    due = latest_due(at, cfg)
    deadline = night_deadline(day, cfg)
    record = _written(instance, [day])
    metadata: dict[str, Any] = {
        "judged": day.isoformat(),
        "latest_due": due.isoformat() if due else "none",
        "due_by": _at(deadline, cfg),
    }
    if record is None:
        return _result(False, f"score date {day} has no predictions/history partition", metadata)
    metadata["written_at"] = MetadataValue.timestamp(record.timestamp)
    late = record.timestamp - deadline.timestamp() if deadline else None
    if late is None:
        text = f"score date {day} written (not a night of the schedule)"
    elif late > 0:
        metadata["late_by_hours"] = round(late / 3600, 2)
        text = f"score date {day} written {_span(late)} after its deadline {_at(deadline, cfg)}"
    else:
        text = f"score date {day} written by its deadline {_at(deadline, cfg)}"
    if due is not None and day < due:
        there = _written(instance, _days_from(due, at)) is not None
        text += f"; a past date: the latest night due now ({due}) " + (
            "is written too" if there else "is not written yet"
        )
    return _result(True, text, metadata)


def judge_latest(
    instance: DagsterInstance, *, at: dt.datetime, cfg: ScheduleSettings
) -> AssetCheckResult:
    """Outside a run: is the latest night due by ``at`` (or a later one) written?"""
    due = latest_due(at, cfg)
    if due is None:
        return _result(True, "no night is due yet", {"judged": "none", "latest_due": "none"})
    deadline = night_deadline(due, cfg)
    metadata: dict[str, Any] = {
        "judged": due.isoformat(),
        "latest_due": due.isoformat(),
        "due_by": _at(deadline, cfg),
    }
    record = _written(instance, _days_from(due, at))
    if record is not None:
        metadata["written_at"] = MetadataValue.timestamp(record.timestamp)
        return _result(
            True, f"the night of {due}, due by {_at(deadline, cfg)}, is written", metadata
        )
    latest = instance.get_latest_materialization_event(HISTORY_KEY)
    last = latest.dagster_event.partition if latest and latest.dagster_event else None
    metadata["latest_written"] = last or "none"
    return _result(
        False,
        f"the night of {due} was due by {_at(deadline, cfg)} and has not written "
        f"predictions/history (latest score date written: {last or 'none'})",
        metadata,
    )


def _days_from(due: dt.date, at: dt.datetime) -> list[dt.date]:
    """``due`` and every later partition that can exist at ``at`` (today's: end_offset=1)."""
    return [due + dt.timedelta(days=i) for i in range(max((at.date() - due).days, 0) + 2)]


def _result(passed: bool, description: str, metadata: dict[str, Any]) -> AssetCheckResult:
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def _run_partition(context: AssetCheckExecutionContext) -> dt.date | None:
    if context.has_partition_key:
        return dt.date.fromisoformat(context.partition_key)
    if context.has_partition_key_range:
        return dt.date.fromisoformat(context.partition_key_range.end)
    return None


def build_freshness_check(settings: Settings) -> AssetChecksDefinition:
    cfg = settings.schedule

    @asset_check(
        asset=HISTORY_KEY,
        name=CHECK_NAME,
        description=(
            "In a run of score date D: D is written (late or not, by D's own deadline). "
            "Elsewhere: the latest night due by now is written (schedule.freshness_deadline_cron)."
        ),
    )
    def freshness_check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        day = _run_partition(context)
        if day is not None:
            return judge_partition(context.instance, day, at=now(), cfg=cfg)
        return judge_latest(context.instance, at=now(), cfg=cfg)

    return freshness_check


# ---------------------------------------------------------------- the sensor

_COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def judged_night(metadata: Mapping[str, Any], due: dt.date) -> bool:
    """Whether an evaluation (its metadata) judged the night ``due`` or a later one, with
    ``due`` the latest night due then too."""
    values = {k: str(getattr(v, "value", v)) for k, v in metadata.items()}
    try:
        judged = dt.date.fromisoformat(values.get("judged", ""))
    except ValueError:
        return False
    return values.get("latest_due") == due.isoformat() and judged >= due


def build_freshness_sensor(
    check: AssetChecksDefinition, settings: Settings, *, default_status: DefaultSensorStatus
) -> SensorDefinition:
    """Runs ``check`` outside any run when its last evaluation did not judge the night due now."""
    cfg = settings.schedule
    [key] = check.check_keys

    @sensor(
        name=SENSOR_NAME,
        asset_selection=AssetSelection.checks(check),
        default_status=default_status,
        minimum_interval_seconds=300,
        description=(
            "Evaluates the freshness check of predictions/history once the latest night due "
            "has not been judged: after each deadline, and after a run of a past date."
        ),
    )
    def predictions_freshness_sensor(
        context: SensorEvaluationContext,
    ) -> RunRequest | SkipReason:
        due = latest_due(now(), cfg)
        if due is None:
            return SkipReason("no night is due yet")
        history = context.instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, status=_COMPLETED
        )
        last = history[0] if history else None
        evaluation = last.evaluation if last is not None else None
        if evaluation is not None and judged_night(evaluation.metadata, due):
            verdict = "passed" if evaluation.passed else "failed"
            return SkipReason(f"the night of {due} was judged already: {verdict}")
        cursor = f"{due}:{last.id if last is not None else 0}"
        if context.cursor == cursor:
            return SkipReason(f"an evaluation for the night of {due} was requested already")
        context.update_cursor(cursor)
        return RunRequest(asset_check_keys=[key])

    return predictions_freshness_sensor
