"""Scenario 6: the MLflow registry unreachable at scoring time.

The job must fail fast (MLflow's HTTP client would otherwise retry for minutes), with an
error that names the registry, and write nothing. The API side (serving with its cached
cold-start model while the registry is down) is tests/api/test_models.py.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from jobs.platform.registry import FAIL_FAST_HTTP, RegistryError, configure_mlflow
from jobs.scoring.run import score_date
from schemas.tables import PREDICTIONS_HISTORY
from tests.conftest import free_port
from tests.integration.test_scoring_support import write_feature_partition
from tests.reliability.conftest import Registry
from tests.reliability.scoring import (
    data_files,
    expected_scores,
    history_figures,
    versions,
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

D0, D = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
N = 1_000
# A product budget, not a benchmark: MLflow's defaults (7 retries, exponential backoff)
# take about four minutes to give up on a refused connection.
FAIL_FAST_BUDGET_S = 60


def test_unreachable_registry_fails_fast_and_writes_nothing(
    spark: Any,
    reliability_registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Any,
) -> None:
    s = with_lake(reliability_registry.settings, tmp_path)
    write_feature_partition(spark, s, as_of=D0, customers=N, seed=31)
    write_feature_partition(spark, s, as_of=D, customers=N, seed=32)
    score_date(spark, s, score_date=D0)  # yesterday's night, with the registry up
    before = versions(spark, s)
    files_before = data_files(s, PREDICTIONS_HISTORY.name)
    for name in FAIL_FAST_HTTP:  # as on a fresh machine; restored after the test
        monkeypatch.delenv(name, raising=False)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = s.model_copy(
        update={"mlflow": s.mlflow.model_copy(update={"tracking_uri": down})}
    )

    started = time.monotonic()
    try:
        with pytest.raises(RegistryError) as raised:
            score_date(spark, unreachable, score_date=D)
    finally:
        configure_mlflow(s)  # point this process's MLflow back at the working registry
    waited = time.monotonic() - started

    after = versions(spark, s)
    yesterday = expected_scores(reliability_registry.champion, customers=N, seed=31)
    kept = history_figures(spark, s, day=D0, expected=yesterday)
    written = history_figures(spark, s, day=D, expected={})
    reliability_report.record(
        scenario="6 registry unreachable at scoring",
        load=f"{N:,} customers",
        faults=1,
        rows_lost=kept.lost,
        rows_duplicated=kept.duplicated + written.rows,
        detail=f"scoring failed after {waited:.1f} s: {str(raised.value)[:90]}...",
    )
    assert f"MLflow registry at {down} is unreachable" in str(raised.value)
    assert waited < FAIL_FAST_BUDGET_S
    assert after == before  # no commit to history or current
    assert data_files(s, PREDICTIONS_HISTORY.name) == files_before  # not even orphan files
    assert written.rows == 0
    assert (kept.rows, kept.lost, kept.duplicated, kept.wrong) == (N, 0, 0, 0)
