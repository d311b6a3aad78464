"""Fixtures shared by the end-to-end tests: one nightly run, one uvicorn process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings
from tests.api.helpers import start_api

# The first night a model beats recency/frequency on the purged CDNOW holdout (python -m bench
# quality: on 1997-10-01 neither LightGBM nor BG/NBD does, and the gate rightly refuses).
SCORE_DATE = dt.date(1997, 11, 1)


@pytest.fixture(scope="session")
def night(spark: Any, settings: Settings, workdir: Path) -> Any:
    """The nightly job, started the way the schedule starts it for the night of SCORE_DATE,
    recorded in the Dagster instance the command line and ``lakescore status`` read."""
    from dagster import DagsterInstance, build_schedule_context

    from cli.runs import dagster_home
    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    defs = build_definitions(settings)
    schedule = next(s for s in defs.schedules if s.name == "nightly_schedule")
    tick = dt.datetime.combine(SCORE_DATE, dt.time(2, 0), tzinfo=dt.UTC)
    with build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    job = defs.resolve_job_def(NIGHTLY_JOB)
    dagster_home(settings)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance
        )
    assert result.success
    return result


@pytest.fixture(scope="session")
def api_url(night: Any, test_env: dict[str, str], workdir: Path) -> Iterator[str]:
    """A real uvicorn process serving the night just synced."""
    api = start_api(test_env, log_path=workdir / "uvicorn.log")
    try:
        yield api.url
    finally:
        api.stop()
