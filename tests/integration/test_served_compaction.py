"""The weekly compaction of monitoring.served: closed days into one file, today's untouched,
the same rows."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from api.served_log import ServedLog
from jobs.monitoring import compact_served
from jobs.platform import read_table
from schemas.settings import Settings
from schemas.tables import SERVED
from tests.integration.test_score import isolated

pytestmark = pytest.mark.integration


def _flush(log: ServedLog, t: float, n: int) -> None:
    """One flush (one file) of ``n`` answers served from ``t`` on."""
    for i in range(n):
        answer = {
            "customer_id": f"C{i}",
            "model_name": "m",
            "model_version": "1",
            "score": 0.5,
            "source": "batch",
        }
        log.record_served(
            request_id=f"r{i}",
            route="single",
            latency_s=0.001,
            degraded=False,
            served=[answer],
            at=t + i,
        )
    assert log.flush() == n


def _files(path: str) -> dict[str, int]:
    from deltalake import DeltaTable

    out: dict[str, int] = {}
    for f in DeltaTable(path).file_uris():
        day = f.split("served_date=")[1].split("/")[0]
        out[day] = out.get(day, 0) + 1
    return out


def test_closed_days_are_compacted_and_today_is_left(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    s = isolated(settings, tmp_path)
    path = s.table_path(SERVED.name)
    log = ServedLog(path=path, flush_s=30, max_rows=1_000)
    today = dt.datetime.now(dt.UTC).date()
    noon = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(12), tzinfo=dt.UTC)
    past = noon.timestamp()
    for k in range(5):  # five flushes three days ago, two today
        _flush(log, past + 10 * k, 3)
    for k in range(2):
        _flush(log, time.time() + k, 4)
    before = _files(path)
    old_day = (today - dt.timedelta(days=3)).isoformat()
    assert before == {old_day: 5, today.isoformat(): 2}

    result = compact_served(spark, s, before=today)

    assert (result.files_removed, result.files_added) == (5, 1)
    assert _files(path) == {old_day: 1, today.isoformat(): 2}
    table = read_table(spark, s, SERVED)
    assert table.count() == 5 * 3 + 2 * 4
    assert table.select("request_id", "served_at").distinct().count() == 23
    # A second run finds nothing left to compact.
    again = compact_served(spark, s, before=today)
    assert again.files_removed == 0


def test_no_table_is_nothing_to_compact(spark: Any, settings: Settings, tmp_path: Path) -> None:
    s = isolated(settings, tmp_path)
    result = compact_served(spark, s, before=dt.date(2024, 1, 1))
    assert (result.files_removed, result.files_added) == (0, 0)
