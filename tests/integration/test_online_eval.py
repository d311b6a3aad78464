"""The online evaluation end to end: served rows written by the API's own writer (delta-rs),
orders in silver, the Spark job, the table, the sensor's reader and the report's section."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from api.served_log import ServedLog
from jobs.monitoring import latest_online, run_online_evaluation
from jobs.monitoring.report import _online_section, latest_online_rows
from jobs.platform import ensure_table, read_table, table_path
from schemas.settings import Settings
from schemas.tables import ONLINE_EVAL, SERVED, SILVER_ORDERS
from tests.integration.test_score import isolated

pytestmark = pytest.mark.integration

S = dt.date(2024, 3, 1)  # the serving day judged
S2 = S + dt.timedelta(days=1)  # a later serving day, one night less mature


def _at(day: dt.date, seconds: float) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() + seconds


def _row(
    t: float, customer: str, model: str, version: str | None, **kw: Any
) -> tuple[float, dict[str, Any]]:
    """When, and the answer as the API's log lists it (``api.respond.served``)."""
    return (
        t,
        {
            "customer_id": customer,
            "experiment": kw.get("experiment", "e1"),
            "arm": kw.get("arm", "champion"),
            "model_name": model,
            "model_version": version,
            "score": kw["score"],
            "source": kw.get("source", "batch"),
        },
    )


@pytest.fixture(scope="module")
def lake(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = isolated(settings, tmp_path_factory.mktemp("online"), model="online_m")
    m, h = s.model.name, s.model.horizon_days
    t = _at(S, 3600)
    rows = [
        # Champion arm, v3: positives A 0.9, C 0.6, E 0.4; negatives B 0.8, D 0.3, F 0.1 -> 7/9.
        # A was first answered 0.05 (below every negative): only the day's last answer counts.
        _row(t - 60, "A", m, "3", score=0.05),
        _row(t, "A", m, "3", score=0.9),
        _row(t, "B", m, "3", score=0.8),
        _row(t, "C", m, "3", score=0.6),
        _row(t, "D", m, "3", score=0.3),
        _row(t, "E", m, "3", score=0.4),
        _row(t, "F", m, "3", score=0.1),
        # Arm b, v4, ranked perfectly: AUC 1.
        _row(t, "G", m, "4", arm="b", score=0.7),
        _row(t, "H", m, "4", arm="b", score=0.2),
        _row(t, "I", m, "4", arm="b", score=0.6),
        _row(t, "J", m, "4", arm="b", score=0.1),
        # The cold-start model's answers, ranked backwards: AUC 0.
        _row(t, "K", m + "_coldstart", "1", source="coldstart", score=0.2),
        _row(t, "L", m + "_coldstart", "1", source="coldstart", score=0.7),
        # Another model's answers are not this model's evaluation.
        _row(t, "A", "someone_else", "9", experiment=None, arm=None, score=0.5),
        # The next serving day.
        _row(_at(S2, 60), "A", m, "3", score=0.9),
        _row(_at(S2, 60), "B", m, "3", score=0.1),
    ]
    log = ServedLog(path=s.table_path(SERVED.name), flush_s=30, max_rows=1_000)
    for at, answer in rows:  # the API's own log and writer, without its thread
        log.record_served(
            request_id="r", route="single", latency_s=0.001, degraded=False, served=[answer], at=at
        )
    assert log.flush() == len(rows)
    d = lambda n: S + dt.timedelta(days=n)  # noqa: E731
    orders = [
        ("o1", "A", d(0), 1, 1.0, "b"),  # the window's first day counts
        ("o2", "C", d(h - 1), 1, 1.0, "b"),  # its last day counts
        ("o3", "E", d(5), 1, 1.0, "b"),
        ("o4", "E", d(6), 1, 1.0, "b"),  # two orders: still one positive
        ("o5", "B", d(-1), 1, 1.0, "b"),  # before the window: negative
        ("o6", "B", d(h), 1, 1.0, "b"),  # after it (on S2's window): negative on S
        ("o7", "G", d(2), 1, 1.0, "b"),
        ("o8", "I", d(3), 1, 1.0, "b"),
        ("o9", "K", d(4), 1, 1.0, "b"),
    ]
    ensure_table(spark, s, SILVER_ORDERS)
    spark.createDataFrame(orders, SILVER_ORDERS.ddl).write.format("delta").mode("append").save(
        table_path(s, SILVER_ORDERS)
    )
    return s


def _rows(spark: Any, s: Settings, day: dt.date) -> dict[tuple[str, str, str], Any]:
    rows = read_table(spark, s, ONLINE_EVAL).where(f"served_date = DATE'{day}'").collect()
    return {(r.model_name, r.arm, r.model_version): r for r in rows}


def test_a_day_is_judged_once_its_label_window_closed(spark: Any, lake: Settings) -> None:
    s, h = lake, lake.model.horizon_days
    early = run_online_evaluation(spark, s, as_of=S + dt.timedelta(days=h - 1))
    assert early.days == {} and early.rows == 0
    run = run_online_evaluation(spark, s, as_of=S + dt.timedelta(days=h))
    assert run.days == {s.model.name: [S]} and run.rows == 3
    got = _rows(spark, s, S)
    m = s.model.name
    assert set(got) == {(m, "champion", "3"), (m, "b", "4"), (m + "_coldstart", "champion", "1")}
    champion = got[(m, "champion", "3")]
    assert champion.auc == pytest.approx(7 / 9)
    assert (champion.customers, champion.answers, champion.positives) == (6, 7, 3)
    assert champion.auc_low <= champion.auc <= champion.auc_high
    assert champion.observed_to_expected == pytest.approx(0.5 / (3.1 / 6))
    assert champion.horizon_days == h and champion.experiment == "e1"
    assert got[(m, "b", "4")].auc == 1.0 and got[(m, "b", "4")].positives == 2
    assert got[(m + "_coldstart", "champion", "1")].auc == 0.0
    # Nothing new matured: nothing written again.
    again = run_online_evaluation(spark, s, as_of=S + dt.timedelta(days=h))
    assert again.days == {} and read_table(spark, s, ONLINE_EVAL).count() == 3


def test_the_sensor_and_the_report_read_it(spark: Any, lake: Settings) -> None:
    s, h = lake, lake.model.horizon_days
    run_online_evaluation(spark, s, as_of=S + dt.timedelta(days=h))
    online = latest_online(s)
    assert online is not None
    assert (online.served_date, online.model_version, online.customers) == (S, "3", 6)
    assert online.auc == pytest.approx(7 / 9)
    html = _online_section(latest_online_rows(spark, s))
    assert f"Answers served on {S}" in html and "0.778 [" in html and "coldstart" in html


def test_the_next_day_follows_a_night_later(spark: Any, lake: Settings, tmp_path: Path) -> None:
    s, h = lake, lake.model.horizon_days
    run_online_evaluation(spark, s, as_of=S + dt.timedelta(days=h))
    run = run_online_evaluation(spark, s, as_of=S2 + dt.timedelta(days=h))
    assert run.days == {s.model.name: [S2]}
    [row] = _rows(spark, s, S2).values()
    # B ordered on S + h, inside S2's window [S2, S2 + h); A's only order is before it.
    assert (row.customers, row.positives, row.auc) == (2, 1, 0.0)
    online = latest_online(s)
    assert online is not None and online.served_date == S2
    assert read_table(spark, s, ONLINE_EVAL).where(f"served_date = DATE'{S}'").count() == 3
