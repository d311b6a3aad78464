"""The retrain sensor over real Delta tables: fires once per drifting run or failing backtest."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from jobs.monitoring.score_runs import ScoreRun
from jobs.platform.lake import ensure_table, table_path
from schemas.settings import Settings, get_settings
from schemas.tables import BACKTESTS, ONLINE_EVAL, SCORE_RUNS

pytestmark = pytest.mark.integration

DAY = dt.date(1998, 1, 10)


@pytest.fixture()
def lake_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The session's settings with this test's own, empty lake (set as an operator would)."""
    monkeypatch.setenv("LAKESCORE_LAKE__ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def score_run(
    settings: Settings, *, run_id: str, day: dt.date, psi: float | None, version: str = "1"
) -> ScoreRun:
    return ScoreRun(
        run_id=run_id,
        score_date=day,
        model_name=settings.model.name,
        model_version=version,
        customers_known=100,
        customers_scored=100,
        coverage=1.0,
        score_p01=0.01,
        score_p10=0.05,
        score_p50=0.1,
        score_p90=0.4,
        score_p99=0.8,
        score_mean=0.15,
        previous_score_date=None if psi is None else day - dt.timedelta(days=1),
        score_psi=psi,
        feature_psi_json=json.dumps({"recency_days": 0.01}),
        duration_s=1.0,
        feature_table_version=1,
        history_version=1,
        recorded_at=dt.datetime(2026, 1, 1) + dt.timedelta(days=(day - DAY).days),
    )


def append_runs(spark: Any, settings: Settings, runs: list[ScoreRun]) -> None:
    ensure_table(spark, settings, SCORE_RUNS)
    rows = [tuple(asdict(r).values()) for r in runs]
    frame = spark.createDataFrame(rows, SCORE_RUNS.ddl)
    frame.write.format("delta").mode("append").save(table_path(settings, SCORE_RUNS))


def append_backtest(spark: Any, settings: Settings, *, day: dt.date, auc: float) -> None:
    ensure_table(spark, settings, BACKTESTS)
    row = (day, settings.model.name, "1", "champion", 30, 100, 10, 0.1, auc, 2.0, dt.datetime.now())
    frame = spark.createDataFrame([row], BACKTESTS.ddl)
    frame.write.format("delta").mode("append").save(table_path(settings, BACKTESTS))


def append_online(
    spark: Any, settings: Settings, *, day: dt.date, auc: tuple[float, float, float], customers: int
) -> None:
    """One champion-arm row of monitoring.online_eval (estimate, low, high)."""
    ensure_table(spark, settings, ONLINE_EVAL)
    values = {
        "served_date": day,
        "model_name": settings.model.name,
        "model_version": "1",
        "experiment": None,
        "arm": None,
        "source": "batch",
        "horizon_days": settings.model.horizon_days,
        "customers": customers,
        "answers": customers,
        "positives": customers // 10,
        "auc": auc[0],
        "auc_low": auc[1],
        "auc_high": auc[2],
        "computed_at": dt.datetime.now(),
    }
    row = tuple(values.get(name) for name, _ in ONLINE_EVAL.fields)
    frame = spark.createDataFrame([row], ONLINE_EVAL.ddl)
    frame.write.format("delta").mode("append").save(table_path(settings, ONLINE_EVAL))


def evaluate(settings: Settings, cursor: str | None) -> Any:
    from dagster import DagsterInstance, build_sensor_context

    from pipelines.definitions import RETRAIN_JOB, build_definitions
    from pipelines.resources import LakescoreResource
    from pipelines.sensors import RETRAIN_SENSOR

    defs = build_definitions(settings)
    sensor = next(s for s in defs.sensors if s.name == RETRAIN_SENSOR)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"lakescore": LakescoreResource()},
            definitions=defs,
        )
        data = sensor.evaluate_tick(context)
    # A request without a job name runs the sensor's one job.
    for request in data.run_requests or []:
        assert (request.job_name or sensor.job_name) == RETRAIN_JOB
    return data


def test_sensor_requests_one_retrain_per_drifting_run(spark: Any, lake_settings: Settings) -> None:
    settings = lake_settings
    empty = evaluate(settings, None)
    assert not empty.run_requests
    assert "no monitoring.score_runs" in (empty.skip_message or "")

    limit = settings.retrain.drift_psi_max
    append_runs(
        spark,
        settings,
        [
            score_run(settings, run_id="first", day=DAY, psi=None),
            score_run(settings, run_id="calm", day=DAY + dt.timedelta(days=1), psi=limit / 4),
        ],
    )
    calm = evaluate(settings, None)
    assert not calm.run_requests
    assert "within the retrain limits" in (calm.skip_message or "")
    assert json.loads(calm.cursor)["score_run"] == "calm"
    again = evaluate(settings, calm.cursor)
    assert not again.run_requests
    assert "nothing new" in (again.skip_message or "")

    drift_day = DAY + dt.timedelta(days=2)
    append_runs(spark, settings, [score_run(settings, run_id="drift", day=drift_day, psi=0.4)])
    fired = evaluate(settings, again.cursor)
    [request] = fired.run_requests
    assert request.run_key == "retrain-drift-drift"
    assert request.partition_key == drift_day.isoformat()
    assert request.run_config["ops"]["models__champion"]["config"]["retrain"] is True
    assert f"score PSI 0.400 > {limit}" in request.tags["lakescore/retrain_reason"]
    assert json.loads(fired.cursor)["score_run"] == "drift"

    # The same drifting run never fires twice: the cursor has judged it.
    repeat = evaluate(settings, fired.cursor)
    assert not repeat.run_requests
    assert "nothing new" in (repeat.skip_message or "")


def test_sensor_requests_a_retrain_when_the_backtest_falls_below_the_floor(
    spark: Any, lake_settings: Settings
) -> None:
    settings = lake_settings
    append_runs(spark, settings, [score_run(settings, run_id="night", day=DAY, psi=0.01)])
    calm = evaluate(settings, None)
    assert not calm.run_requests

    matured = DAY - dt.timedelta(days=settings.model.horizon_days)
    floor = settings.retrain.backtest_auc_min
    append_backtest(spark, settings, day=matured, auc=floor - 0.1)
    fired = evaluate(settings, calm.cursor)
    [request] = fired.run_requests
    assert request.run_key == f"retrain-backtest-{matured.isoformat()}-v1"
    assert request.partition_key == DAY.isoformat()
    assert "realised AUC" in request.tags["lakescore/retrain_reason"]
    assert not evaluate(settings, fired.cursor).run_requests


def test_sensor_requests_a_retrain_when_the_served_answers_fall_below_the_floor(
    spark: Any, lake_settings: Settings
) -> None:
    settings = lake_settings
    enough = settings.online_eval.min_customers
    floor = settings.retrain.online_auc_min
    append_runs(spark, settings, [score_run(settings, run_id="night", day=DAY, psi=0.01)])
    calm = evaluate(settings, None)
    assert not calm.run_requests

    served = DAY - dt.timedelta(days=settings.model.horizon_days)
    # The interval reaches the floor: noise, not a reason.
    append_online(
        spark,
        settings,
        day=served,
        auc=(floor - 0.02, floor - 0.05, floor + 0.01),
        customers=enough,
    )
    straddles = evaluate(settings, calm.cursor)
    assert not straddles.run_requests
    assert "online AUC" in (straddles.skip_message or "")
    # Wholly below it, but on too few customers.
    day2 = served + dt.timedelta(days=1)
    append_online(spark, settings, day=day2, auc=(0.5, 0.45, 0.55), customers=enough - 1)
    small = evaluate(settings, straddles.cursor)
    assert not small.run_requests

    day3 = served + dt.timedelta(days=2)
    append_online(spark, settings, day=day3, auc=(0.5, 0.45, 0.55), customers=enough)
    fired = evaluate(settings, small.cursor)
    [request] = fired.run_requests
    assert request.run_key == f"retrain-online-{day3.isoformat()}-v1"
    assert request.partition_key == DAY.isoformat()
    assert "online AUC 0.500 [0.450, 0.550]" in request.tags["lakescore/retrain_reason"]
    assert not evaluate(settings, fired.cursor).run_requests
