"""Every schedule and sensor starts RUNNING on a fresh Dagster daemon, unless the settings
switch it off (each one, all sensors, or everything)."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import DefaultScheduleStatus, DefaultSensorStatus, Definitions

from pipelines.alerts import RUN_FAILURE_SENSOR
from pipelines.definitions import build_definitions
from pipelines.sensors import RETRAIN_SENSOR
from schemas.settings import Settings

pytestmark = pytest.mark.unit

SCHEDULES = {"nightly_schedule", "retrain_schedule", "maintenance_schedule"}
SENSORS = {"predictions_freshness_sensor", RETRAIN_SENSOR, RUN_FAILURE_SENSOR}


def running(defs: Definitions) -> dict[str, bool]:
    """Whether each schedule and sensor starts RUNNING (every one of them, by name)."""
    out: dict[str, bool] = {}
    for schedule in defs.schedules or []:
        assert schedule.default_status in (
            DefaultScheduleStatus.RUNNING,
            DefaultScheduleStatus.STOPPED,
        )
        out[schedule.name] = schedule.default_status == DefaultScheduleStatus.RUNNING
    for sensor in defs.sensors or []:
        out[sensor.name] = sensor.default_status == DefaultSensorStatus.RUNNING
    return out


def build(**sections: Any) -> dict[str, bool]:
    return running(build_definitions(Settings(**sections)))


def test_everything_runs_by_default() -> None:
    states = build()
    assert set(states) == SCHEDULES | SENSORS
    assert all(states.values()), states


@pytest.mark.parametrize(
    ("sections", "stopped"),
    [
        ({"schedule": {"nightly_enabled": False}}, {"nightly_schedule"}),
        ({"schedule": {"retrain_enabled": False}}, {"retrain_schedule"}),
        ({"schedule": {"maintenance_enabled": False}}, {"maintenance_schedule"}),
        ({"schedule": {"freshness_sensor_enabled": False}}, {"predictions_freshness_sensor"}),
        ({"schedule": {"run_failure_sensor_enabled": False}}, {RUN_FAILURE_SENSOR}),
        ({"retrain": {"sensor_running": False}}, {RETRAIN_SENSOR}),
        ({"schedule": {"sensors_enabled": False}}, SENSORS),
        ({"schedule": {"enabled": False}}, SCHEDULES | SENSORS),
    ],
)
def test_a_switch_stops_only_what_it_names(sections: dict[str, Any], stopped: set[str]) -> None:
    states = build(**sections)
    assert {name for name, on in states.items() if not on} == stopped


def test_an_operator_switches_a_schedule_off_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKESCORE_SCHEDULE__NIGHTLY_ENABLED", "false")
    states = build()
    assert {name for name, on in states.items() if not on} == {"nightly_schedule"}
