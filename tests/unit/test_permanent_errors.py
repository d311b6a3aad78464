"""``permanent_errors`` through a real Dagster run: known errors fail once, the rest retry."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import DagsterEventType, RetryPolicy, job, op

from jobs.scoring.run import ScoringError
from jobs.sync.writes import BatchWriteError, SyncError
from pipelines.errors import permanent_errors

pytestmark = pytest.mark.unit

RETRIES = 2


def run_raising(error: Exception) -> Any:
    @op(retry_policy=RetryPolicy(max_retries=RETRIES))
    def step() -> None:
        with permanent_errors(ScoringError, SyncError, retryable=(BatchWriteError,)):
            raise error

    @job
    def one_step() -> None:
        step()

    return one_step.execute_in_process(raise_on_error=False)


def events(result: Any, kind: DagsterEventType) -> list[Any]:
    return [e for e in result.all_events if e.event_type == kind]


@pytest.mark.parametrize(
    "error",
    [ScoringError("no feature partition for 1998-02-01"), SyncError("no predictions.current")],
)
def test_a_known_error_fails_the_step_once_and_names_the_problem(error: Exception) -> None:
    result = run_raising(error)
    assert not result.success
    assert events(result, DagsterEventType.STEP_UP_FOR_RETRY) == []
    [failure] = events(result, DagsterEventType.STEP_FAILURE)
    described = failure.step_failure_data.user_failure_data.description
    assert described == f"{type(error).__name__}: {error}"


@pytest.mark.parametrize(
    "error", [BatchWriteError("batch 3 failed after 5 attempts"), OSError("disk busy")]
)
def test_a_transient_error_is_retried(error: Exception) -> None:
    result = run_raising(error)
    assert not result.success
    assert len(events(result, DagsterEventType.STEP_UP_FOR_RETRY)) == RETRIES
    assert len(events(result, DagsterEventType.STEP_RESTARTED)) == RETRIES
    assert len(events(result, DagsterEventType.STEP_FAILURE)) == 1
