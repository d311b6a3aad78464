"""Scenario 2: the same night run twice, and two runs of the same date started together.

Both must leave the tables as one run does: each customer once in history for the date,
with the champion's scores (computed outside Spark), and one current row per customer.
Two concurrent runs share the test's Spark session (two threads, two Delta transactions);
a run that loses the commit race must fail with Delta's concurrent-modification error
and succeed when retried.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from jobs.scoring.run import ScoreResult, score_date
from tests.integration.test_scoring_support import write_feature_partition
from tests.reliability.conftest import Registry
from tests.reliability.scoring import (
    current_figures,
    expected_scores,
    history_figures,
    versions,
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

D0, D = dt.date(2024, 4, 1), dt.date(2024, 4, 2)
N = 3_000
SCENARIO = "2 same night twice / concurrently"
# Delta's optimistic concurrency errors (io.delta.exceptions.*): a clean, retryable refusal.
CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
)


@pytest.fixture
def lake(spark: Any, reliability_registry: Registry, tmp_path: Path) -> Any:
    s = with_lake(reliability_registry.settings, tmp_path)
    write_feature_partition(spark, s, as_of=D0, customers=N, seed=21)
    write_feature_partition(spark, s, as_of=D, customers=N, seed=22)
    score_date(spark, s, score_date=D0)  # yesterday: the tables exist, as on any night
    return s


def test_the_same_night_twice_equals_one_run(
    spark: Any, lake: Any, reliability_registry: Registry, reliability_report: Any
) -> None:
    expected = expected_scores(reliability_registry.champion, customers=N, seed=22)
    first = score_date(spark, lake, score_date=D)
    once = history_figures(spark, lake, day=D, expected=expected)
    second = score_date(spark, lake, score_date=D)

    hist = history_figures(spark, lake, day=D, expected=expected)
    cur = current_figures(spark, lake, day=D, expected=expected)
    reliability_report.record(
        scenario=SCENARIO,
        load=f"{N:,} customers",
        faults=1,
        rows_lost=hist.lost + cur.lost,
        rows_duplicated=hist.duplicated + cur.duplicated,
        detail=f"sequential: runs wrote {first.rows} then {second.rows} rows",
    )
    assert (once.rows, once.lost, once.duplicated, once.wrong) == (N, 0, 0, 0)
    assert (hist.rows, hist.lost, hist.duplicated, hist.wrong) == (N, 0, 0, 0)
    assert (cur.rows, cur.lost, cur.duplicated, cur.wrong) == (N, 0, 0, 0)


def _conflict(exc: BaseException) -> str | None:
    text = f"{type(exc).__name__}: {exc}"
    return next((name for name in CONFLICTS if name in text), None)


@pytest.mark.slow  # two scoring runs at once; the sequential rerun above stays in the default tier
def test_two_concurrent_runs_of_a_date_equal_one_run(
    spark: Any, lake: Any, reliability_registry: Registry, reliability_report: Any
) -> None:
    expected = expected_scores(reliability_registry.champion, customers=N, seed=22)
    before = versions(spark, lake)
    start = threading.Barrier(2)
    outcomes: dict[int, ScoreResult | BaseException] = {}

    def run(slot: int) -> None:
        start.wait()
        try:
            outcomes[slot] = score_date(spark, lake, score_date=D)
        except Exception as exc:  # the race's loser: recorded and checked below
            outcomes[slot] = exc

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert all(not t.is_alive() for t in threads)

    failures = [o for o in outcomes.values() if isinstance(o, BaseException)]
    conflicts = [_conflict(f) for f in failures]
    assert None not in conflicts, f"not a clean concurrent-modification error: {failures}"
    assert len(failures) <= 1  # at least one run commits
    retried = [score_date(spark, lake, score_date=D) for _ in failures]  # the operator's retry

    hist = history_figures(spark, lake, day=D, expected=expected)
    cur = current_figures(spark, lake, day=D, expected=expected)
    how = (
        f"loser failed with {conflicts[0]}, retry wrote {retried[0].rows} rows"
        if failures
        else "both committed one after the other"
    )
    reliability_report.record(
        scenario=SCENARIO,
        load=f"{N:,} customers",
        faults=1,
        rows_lost=hist.lost + cur.lost,
        rows_duplicated=hist.duplicated + cur.duplicated,
        detail=f"concurrent: {how}; Delta versions {before} -> {versions(spark, lake)}",
    )
    assert (hist.rows, hist.lost, hist.duplicated, hist.wrong) == (N, 0, 0, 0)
    assert hist.run_ids == 1
    assert (cur.rows, cur.lost, cur.duplicated, cur.wrong) == (N, 0, 0, 0)
