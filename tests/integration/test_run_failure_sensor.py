"""A failed run is posted to the alert webhook once, by the run-failure sensor, unless the
step hook already posted its failed steps; evaluated as the daemon does, over a real
Dagster instance (SQLite storage) and a real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    SensorDefinition,
    build_sensor_context,
    instance_for_test,
    job,
    op,
)

from pipelines.alerts import RUN_FAILURE_SENSOR, notify_failure
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.resources import LakescoreResource
from schemas.settings import Settings, get_settings

pytestmark = pytest.mark.integration

NIGHT = "1998-02-01"


@pytest.fixture
def alert_settings(
    webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings with the webhook set, as an operator sets it (the sensor reads them through
    the ``lakescore`` resource)."""
    monkeypatch.setenv("LAKESCORE_ALERTS__WEBHOOK_URL", webhook[0])
    monkeypatch.setenv("LAKESCORE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def tick(
    sensor: SensorDefinition, defs: Definitions, instance: DagsterInstance, cursor: str | None
) -> str | None:
    """One daemon tick of the sensor; returns the cursor it leaves."""
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"lakescore": LakescoreResource()},
        definitions=defs,
    )
    return sensor.evaluate_tick(context).cursor


@op
def broken() -> None:
    raise RuntimeError("boom in a step")


@job(hooks={notify_failure}, resource_defs={"lakescore": LakescoreResource()})
def hooked() -> None:
    broken()


@job
def unhooked() -> None:
    broken()


def test_failed_runs_are_posted_once(
    alert_settings: Settings, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    _, received = webhook
    defs = build_definitions(alert_settings)
    sensor = next(s for s in defs.sensors or [] if s.name == RUN_FAILURE_SENSOR)
    with instance_for_test() as instance:
        cursor = tick(sensor, defs, instance, None)  # the first tick starts from now
        assert cursor is not None

        # A nightly run that died outside any step (what the run monitor or a launcher
        # reports when the run worker is gone): no step hook ran, nobody was told.
        night = instance.create_run_for_job(
            defs.resolve_job_def(NIGHTLY_JOB), tags={"dagster/partition": NIGHT}
        )
        instance.report_run_failed(night, message="run worker exited unexpectedly")
        # A step failure the hook posts itself, and one in a job without the hook.
        posted_by_hook = hooked.execute_in_process(instance=instance, raise_on_error=False)
        not_hooked = unhooked.execute_in_process(instance=instance, raise_on_error=False)
        assert not posted_by_hook.success and not not_hooked.success
        assert [a["event"] for a in received] == ["lakescore.step_failed"]

        cursor = tick(sensor, defs, instance, cursor)
        by_run = {a["run_id"]: a for a in received if a["event"] == "lakescore.run_failed"}
        assert len(received) == 3, received
        assert set(by_run) == {night.run_id, not_hooked.run_id}

        alert = by_run[night.run_id]
        assert alert["job"] == NIGHTLY_JOB
        assert alert["partition"] == NIGHT
        assert "run worker exited unexpectedly" in alert["error"]
        assert alert["steps_not_reported"] == {}

        unreported = by_run[not_hooked.run_id]
        assert unreported["job"] == "unhooked"
        assert unreported["partition"] is None
        assert unreported["reason"] == "STEP_FAILURE"
        assert unreported["steps_not_reported"] == {"broken": "RuntimeError: boom in a step"}
        assert "boom in a step" in unreported["error"]

        # The next tick starts after what this one judged: nothing is posted twice.
        tick(sensor, defs, instance, cursor)
        assert len(received) == 3
