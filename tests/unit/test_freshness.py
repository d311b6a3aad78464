"""The freshness check of predictions/history judges a partition against its own score date
and the schedule: a night (a backfill, the demo) of a past date passes it; the latest night
due, missing after its deadline, fails it; the sensor evaluates it when nothing judged that
night yet. On a stand-in for the history asset (same key and partitions), in a real
(ephemeral) Dagster instance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from dagster import (
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    asset,
    build_sensor_context,
    define_asset_job,
)

from pipelines import freshness
from pipelines.freshness import (
    build_freshness_check,
    build_freshness_sensor,
    latest_due,
    night_deadline,
)
from pipelines.keys import HISTORY_KEY
from pipelines.partitions import score_date_partitions
from schemas.settings import Settings

pytestmark = pytest.mark.unit

SETTINGS = Settings(
    schedule={
        "nightly_cron": "0 2 * * *",
        "freshness_deadline_cron": "0 6 * * *",
        "timezone": "UTC",
        "start_date": "1997-01-01",
    }
)
MAY_1, MAY_2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)


def utc(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)


@pytest.fixture
def defs() -> Definitions:
    @asset(key=HISTORY_KEY, partitions_def=score_date_partitions(SETTINGS))
    def history() -> None:
        """Stands in for predictions/history: the check reads only the instance's records."""

    check = build_freshness_check(SETTINGS)
    sensor = build_freshness_sensor(check, SETTINGS, default_status=DefaultSensorStatus.RUNNING)
    return Definitions(
        assets=[history],
        asset_checks=[check],
        sensors=[sensor],
        jobs=[
            define_asset_job("night", AssetSelection.all()),
            define_asset_job("check", AssetSelection.checks(check)),
        ],
    )


@pytest.fixture
def instance() -> Any:
    with DagsterInstance.ephemeral() as inst:
        yield inst


def at(monkeypatch: pytest.MonkeyPatch, moment: dt.datetime) -> None:
    monkeypatch.setattr(freshness, "now", lambda: moment)


def night(defs: Definitions, instance: Any, day: dt.date) -> Any:
    """A night of ``day``: the asset and its checks, as the nightly job runs them."""
    result = defs.resolve_job_def("night").execute_in_process(
        partition_key=day.isoformat(), instance=instance
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def evaluated(defs: Definitions, instance: Any) -> Any:
    """The check on its own, outside a partitioned run (as the sensor's runs evaluate it)."""
    result = defs.resolve_job_def("check").execute_in_process(instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def meta(evaluation: Any) -> dict[str, Any]:
    return {k: v.value for k, v in evaluation.metadata.items()}


def test_a_night_of_a_past_date_passes(defs: Definitions, instance: Any) -> None:
    evaluation = night(defs, instance, dt.date(1998, 2, 1))  # the demo's, decades after it
    assert evaluation.passed, evaluation.description
    assert meta(evaluation)["judged"] == "1998-02-01"
    assert meta(evaluation)["late_by_hours"] > 24 * 365  # late against its own deadline
    assert "after its deadline 1998-02-01 06:00 UTC" in evaluation.description
    assert "the latest night due now" in evaluation.description


def test_the_latest_due_night_missing_after_its_deadline_fails(
    defs: Definitions, instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(monkeypatch, utc(MAY_2, 2, 30))
    assert night(defs, instance, MAY_1).passed
    at(monkeypatch, utc(MAY_2, 5, 59))  # the night of May 2 is not due yet
    before = evaluated(defs, instance)
    assert before.passed and meta(before)["judged"] == "2024-05-01"

    at(monkeypatch, utc(MAY_2, 6, 1))  # past its deadline: missed
    missed = evaluated(defs, instance)
    assert not missed.passed
    assert "the night of 2024-05-02 was due by 2024-05-02 06:00 UTC" in missed.description
    assert meta(missed)["latest_written"] == "2024-05-01"

    # A backfill of a past date meanwhile passes its own check; the night due is still missing.
    assert night(defs, instance, dt.date(2024, 4, 20)).passed
    assert not evaluated(defs, instance).passed

    assert night(defs, instance, MAY_2).passed  # the night runs, late
    assert evaluated(defs, instance).passed


def test_a_night_written_early_covers_the_night_due(
    defs: Definitions, instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(monkeypatch, utc(MAY_2, 6, 1))
    assert night(defs, instance, dt.date(2024, 5, 3)).passed  # tomorrow's, already
    assert evaluated(defs, instance).passed


def test_the_sensor_evaluates_when_nothing_judged_the_night_due(
    defs: Definitions, instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    [sensor] = defs.sensors or []

    def tick(cursor: str | None = None) -> Any:
        with build_sensor_context(
            instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
        ) as context:
            return sensor.evaluate_tick(context)

    at(monkeypatch, utc(MAY_2, 2, 30))
    assert night(defs, instance, MAY_1).passed  # the night judged the night due (May 1)
    assert not tick().run_requests

    at(monkeypatch, utc(MAY_2, 6, 1))  # a new deadline passed: May 2 is due, unjudged
    first = tick()
    [request] = first.run_requests or []
    assert [k.name for k in request.asset_check_keys or []] == ["freshness_check"]
    assert not tick(first.cursor).run_requests  # requested once, not again before it ran

    assert not evaluated(defs, instance).passed  # the requested evaluation: missed
    assert not tick(first.cursor).run_requests  # judged: failed, and stays so until a run

    assert night(defs, instance, dt.date(2024, 4, 20)).passed  # a backfill judged its date only
    assert tick(first.cursor).run_requests


def test_deadlines_follow_the_schedule() -> None:
    weekdays = SETTINGS.schedule.model_copy(
        update={"nightly_cron": "0 23 * * 1-5", "timezone": "Europe/Berlin"}
    )
    friday, saturday = dt.date(2024, 5, 3), dt.date(2024, 5, 4)
    # The night of Friday runs Friday 23:00 and is due by Saturday 06:00, Berlin time.
    assert night_deadline(friday, weekdays) == dt.datetime(
        2024, 5, 4, 6, tzinfo=dt.timezone(dt.timedelta(hours=2))
    )
    assert night_deadline(saturday, weekdays) is None  # no night on Saturdays
    sunday_noon = dt.datetime(2024, 5, 5, 10, tzinfo=dt.UTC)
    assert latest_due(sunday_noon, weekdays) == friday
    assert latest_due(dt.datetime(1997, 1, 1, 3, tzinfo=dt.UTC), SETTINGS.schedule) is None
