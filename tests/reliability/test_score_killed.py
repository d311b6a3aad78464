"""Scenario 1: the scoring process killed (SIGKILL) while it writes history, then re-run.

``python -m jobs.ops.score --date D`` runs in its own process; it is killed as soon as data
files of its history write appear in the table folder (before its commit), or, in the
slow variant, as soon as the history commit is there (before current is updated). The
re-run must leave each (customer, score date, model, role) exactly once, with the
champion's scores computed outside Spark, and one current row per customer.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from jobs.scoring.run import score_date
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.integration.test_scoring_support import write_feature_partition
from tests.reliability.conftest import Registry
from tests.reliability.scoring import (
    commits,
    current_figures,
    data_files,
    expected_scores,
    history_figures,
    start_scoring,
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

D = dt.date(2024, 3, 1)
N = 50_000  # enough rows that the history write lasts long enough to be caught mid-way
SEED = 11


def _kill_when(proc: Any, ready: Any, *, log: Path) -> None:
    deadline = time.monotonic() + 300
    try:
        while not ready():
            assert proc.poll() is None, "scoring ended before the kill: " + log.read_text()[-2000:]
            assert time.monotonic() < deadline, "scoring never reached the kill point"
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


@pytest.mark.parametrize(
    # Both in the slow tier (make reliability): each starts its own scoring process and
    # Spark driver, about a minute of the default run on 2 cores.
    "kill_at",
    [
        pytest.param("history files", marks=pytest.mark.slow),
        pytest.param("history committed", marks=pytest.mark.slow),
    ],
)
def test_killed_scoring_rerun_scores_everyone_exactly_once(
    spark: Any,
    reliability_registry: Registry,
    test_env: dict[str, str],
    tmp_path: Path,
    reliability_report: Any,
    kill_at: str,
) -> None:
    s = with_lake(reliability_registry.settings, tmp_path)
    write_feature_partition(spark, s, as_of=D, customers=N, seed=SEED)
    expected = expected_scores(reliability_registry.champion, customers=N, seed=SEED)
    log = tmp_path / "score.log"
    proc = start_scoring(
        s, test_env, day=D, log_path=log, LAKESCORE_SCORING__ARROW_BATCH_ROWS="1000"
    )
    history = PREDICTIONS_HISTORY.name
    if kill_at == "history files":
        _kill_when(proc, lambda: data_files(s, history), log=log)
    else:  # commit 0 creates the empty table, commit 1 is the history write
        _kill_when(proc, lambda: commits(s, history) >= 2, log=log)
    assert proc.returncode == -signal.SIGKILL

    # What the killed run left: files, but a committed history is all or nothing.
    orphans = len(data_files(s, history))
    committed = commits(s, history)
    after_kill = history_figures(spark, s, day=D, expected=expected)
    assert after_kill.rows in (0, N)

    result = score_date(spark, s, score_date=D)

    hist = history_figures(spark, s, day=D, expected=expected)
    cur = current_figures(spark, s, day=D, expected=expected)
    reliability_report.record(
        scenario="1 scoring SIGKILLed mid-write",
        load=f"{N:,} customers",
        faults=1,
        rows_lost=hist.lost + cur.lost,
        rows_duplicated=hist.duplicated + cur.duplicated,
        detail=(
            f"killed at '{kill_at}': {orphans} data files, {committed} history commits, "
            f"{after_kill.rows} rows visible; re-run {result.rows} rows, "
            f"wrong scores {hist.wrong + cur.wrong}"
        ),
    )
    assert (hist.rows, hist.lost, hist.duplicated, hist.wrong) == (N, 0, 0, 0)
    assert hist.run_ids == 1  # only the re-run's rows; nothing of the killed run
    assert (cur.rows, cur.lost, cur.duplicated, cur.wrong) == (N, 0, 0, 0)
    assert commits(s, PREDICTIONS_CURRENT.name) >= 2
