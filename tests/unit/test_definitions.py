"""The Dagster definitions load, with the asset graph, jobs and schedules the nightly run needs."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import AssetKey, build_schedule_context

from pipelines.definitions import NIGHTLY_JOB, RETRAIN_JOB, build_definitions
from schemas.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def defs():  # type: ignore[no-untyped-def]
    return build_definitions(Settings(schedule={"nightly_cron": "30 1 * * *", "timezone": "UTC"}))


def test_asset_graph_runs_ingest_to_sync_in_order(defs) -> None:  # type: ignore[no-untyped-def]
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    expected = {
        "bronze/orders",
        "silver/orders",
        "gold/customer_features",
        "models/champion",
        "predictions/history",
        "predictions/current",
        "serving/mongo_predictions",
        "monitoring/backtests",
    }
    assert expected <= keys

    def upstream(key: str) -> set[str]:
        seen: set[str] = set()
        todo = [AssetKey.from_user_string(key)]
        while todo:
            for parent in graph.get(todo.pop()).parent_keys:
                if parent.to_user_string() not in seen:
                    seen.add(parent.to_user_string())
                    todo.append(parent)
        return seen

    assert {"silver/orders", "gold/customer_features", "models/champion"} <= upstream(
        "predictions/history"
    )
    assert "predictions/current" in upstream("serving/mongo_predictions")
    assert {"predictions/history", "silver/orders"} <= upstream("monitoring/backtests")


def test_feature_contract_is_a_blocking_check(defs) -> None:  # type: ignore[no-untyped-def]
    graph = defs.resolve_asset_graph()
    checks = graph.get_check_keys_for_assets({AssetKey(["gold", "customer_features"])})
    specs = [graph.get_check_spec(k) for k in checks]
    blocking = [s.name for s in specs if s.blocking]
    assert "customer_features_contract" in blocking


def test_jobs_and_schedules(defs) -> None:  # type: ignore[no-untyped-def]
    nightly = defs.resolve_job_def(NIGHTLY_JOB)
    assert nightly.partitions_def is not None
    assert defs.resolve_job_def(RETRAIN_JOB) is not None
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["nightly_schedule"].cron_schedule == "30 1 * * *"
    assert schedules["nightly_schedule"].execution_timezone == "UTC"
    assert schedules["maintenance_schedule"].job_name == "silver_maintenance"
    assert schedules["maintenance_schedule"].cron_schedule == Settings().schedule.maintenance_cron
    assert defs.resolve_job_def("silver_maintenance") is not None


def test_nightly_schedule_requests_the_night_that_starts(defs) -> None:  # type: ignore[no-untyped-def]
    schedule = next(s for s in defs.schedules if s.name == "nightly_schedule")
    when = dt.datetime(1997, 10, 1, 1, 30, tzinfo=dt.UTC)
    with build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    ) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "1997-10-01"


def test_retrain_schedule_forces_retraining(defs) -> None:  # type: ignore[no-untyped-def]
    schedule = next(s for s in defs.schedules if s.name == "retrain_schedule")
    when = dt.datetime(1998, 2, 1, 4, 0, tzinfo=dt.UTC)
    with build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    ) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "1998-02-01"
    assert request.run_config["ops"]["models__champion"]["config"]["retrain"] is True


def test_retrain_sensor_targets_the_retrain_job(defs) -> None:  # type: ignore[no-untyped-def]
    from pipelines.sensors import RETRAIN_SENSOR

    sensors = {s.name: s for s in defs.sensors}
    assert RETRAIN_SENSOR in sensors
    sensor = sensors[RETRAIN_SENSOR]
    assert sensor.job_name == RETRAIN_JOB
    assert sensor.minimum_interval_seconds == Settings().retrain.sensor_interval_s
    assert "lakescore" in sensor.required_resource_keys
