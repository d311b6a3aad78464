"""Through the nightly job (with its step retries): a deterministic failure fails once.

An empty lake and an empty registry: scoring has no champion to score with, and
the sync has no ``predictions.current`` to sync. Neither can be fixed by a retry,
so each step fails on its first attempt with the message that names the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings, get_settings

pytestmark = pytest.mark.integration

SCORE_DATE = "1998-02-01"


@pytest.fixture()
def empty_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The session's settings with this test's own empty lake and registry, and two retries."""
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    monkeypatch.setenv("LAKESCORE_LAKE__ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKESCORE_MLFLOW__TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which the settings read first:
    # an earlier test's registry (with a champion) would otherwise win over this empty one.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LAKESCORE_MLFLOW__ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("LAKESCORE_SCHEDULE__STEP_RETRIES", "2")
    monkeypatch.setenv("LAKESCORE_SCHEDULE__STEP_RETRY_DELAY_S", "0")
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)


def run_nightly(settings: Settings, keys: list[Any]) -> Any:
    from dagster import DagsterInstance

    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
    with DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(
            partition_key=SCORE_DATE,
            instance=instance,
            asset_selection=keys,
            raise_on_error=False,
        )


def step_events(result: Any, step: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in result.all_events:
        if event.step_key == step:
            counts[event.event_type_value] = counts.get(event.event_type_value, 0) + 1
    return counts


def failure_message(result: Any, step: str) -> str:
    [failure] = [e for e in result.all_events if e.step_key == step and e.is_step_failure]
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else str(data.error)


def test_scoring_without_a_champion_fails_once(spark: Any, empty_settings: Settings) -> None:
    from pipelines.keys import CURRENT_KEY, HISTORY_KEY

    assert empty_settings.schedule.step_retries == 2
    result = run_nightly(empty_settings, [HISTORY_KEY, CURRENT_KEY])
    assert not result.success
    counts = step_events(result, "predictions__history")
    assert counts.get("STEP_FAILURE") == 1
    assert "STEP_UP_FOR_RETRY" not in counts and "STEP_RESTARTED" not in counts
    message = failure_message(result, "predictions__history")
    assert message.startswith("ScoringError: ")
    assert f"model {empty_settings.model.name!r} has no 'champion' alias" in message


def test_sync_without_predictions_fails_once(spark: Any, empty_settings: Settings) -> None:
    from pipelines.keys import MONGO_PREDICTIONS_KEY

    result = run_nightly(empty_settings, [MONGO_PREDICTIONS_KEY])
    assert not result.success
    step = "serving__mongo_predictions"
    counts = step_events(result, step)
    assert counts.get("STEP_FAILURE") == 1
    assert "STEP_UP_FOR_RETRY" not in counts and "STEP_RESTARTED" not in counts
    message = failure_message(result, step)
    assert message == "SyncError: predictions.current does not exist yet: run scoring first"
