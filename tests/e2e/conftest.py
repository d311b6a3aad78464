"""Fixtures shared by the end-to-end tests: one nightly run, one uvicorn process."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings
from tests.api.helpers import start_api

# The first night a model beats recency/frequency on the purged CDNOW holdout (python -m bench
# quality: on 1997-10-01 neither LightGBM nor BG/NBD does, and the gate rightly refuses).
SCORE_DATE = dt.date(1997, 11, 1)


@dataclass(frozen=True)
class NightRun:
    """The night's Dagster result, what the command line printed of it, and its log file."""

    result: Any
    printed: str
    log: Path


@pytest.fixture(scope="session")
def night_run(spark: Any, settings: Settings, workdir: Path) -> NightRun:
    """The nightly job, started the way the schedule starts it for the night of SCORE_DATE,
    run the way ``lakescore night`` runs it (a line per step on the console, the whole log
    in <data_dir>/logs/<run id>.log), recorded in the Dagster instance the command line and
    ``lakescore status`` read."""
    from dagster import build_schedule_context
    from rich.console import Console

    from cli.output import RunOutput
    from cli.runs import execute_job
    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    defs = build_definitions(settings)
    schedule = next(s for s in defs.schedules if s.name == "nightly_schedule")
    tick = dt.datetime.combine(SCORE_DATE, dt.time(2, 0), tzinfo=dt.UTC)
    with build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == SCORE_DATE.isoformat()
    printed = io.StringIO()
    # From the folder that holds the data dir, as ``make demo`` runs: paths print relative.
    with (
        contextlib.chdir(workdir),
        RunOutput(settings, console=Console(file=printed, width=80)) as out,
    ):
        result = execute_job(
            settings,
            job_name=NIGHTLY_JOB,
            partition=SCORE_DATE,
            tags=request.tags,
            output=out,
            title=f"night {SCORE_DATE}",
        )
    assert result.success
    return NightRun(result=result, printed=printed.getvalue(), log=out.log_path(result.run_id))


@pytest.fixture(scope="session")
def night(night_run: NightRun) -> Any:
    return night_run.result


@pytest.fixture(scope="session")
def api_url(night: Any, test_env: dict[str, str], workdir: Path) -> Iterator[str]:
    """A real uvicorn process serving the night just synced."""
    api = start_api(test_env, log_path=workdir / "uvicorn.log")
    try:
        yield api.url
    finally:
        api.stop()
