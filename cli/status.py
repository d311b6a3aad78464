"""``lakescore status``: last runs, the current champion, and how far MongoDB lags Delta.

Read-only and Spark-free: the Dagster instance, the MLflow client, the Delta log through
delta-rs, and the sync watermark in MongoDB. ``status_report`` gives the figures as plain
data (``lakescore status --json``); ``show_status`` prints them as tables.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from schemas.settings import Settings


def status_report(settings: Settings) -> dict[str, Any]:
    """``{"runs": [...], "models": [...], "sync": {...}}``, JSON-ready."""
    current, synced, lag = sync_lag(settings)
    return {
        "runs": last_runs(settings),
        "models": registry_aliases(settings),
        "sync": {"current_version": current, "synced_version": synced, "lag_versions": lag},
    }


def show_status(settings: Settings, *, console: Console, as_json: bool = False) -> None:
    report = status_report(settings)
    if as_json:
        console.out(json.dumps(report, indent=2), highlight=False)
        return
    console.print(_table("last Dagster runs", report["runs"]))
    console.print(_table("models in the registry", report["models"]))
    sync = report["sync"]
    table = Table(title="serving store")
    for col in ("predictions.current version", "synced version", "lag (versions)"):
        table.add_column(col)
    lag = sync["lag_versions"]
    table.add_row(
        str(sync["current_version"]), str(sync["synced_version"]), "-" if lag is None else str(lag)
    )
    console.print(table)


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in rows[0] if rows else ():
        table.add_column(col)
    for row in rows:
        table.add_row(*["-" if v is None else str(v) for v in row.values()])
    return table


def last_runs(settings: Settings, *, limit: int = 8) -> list[dict[str, Any]]:
    """The newest Dagster runs of the instance, newest first."""
    from dagster import DagsterInstance

    from cli.runs import dagster_home

    dagster_home(settings)
    runs = []
    with DagsterInstance.get() as instance:
        for record in instance.get_run_records(limit=limit):
            run = record.dagster_run
            runs.append(
                {
                    "run": run.run_id[:8],
                    "job": run.job_name,
                    "partition": run.tags.get("dagster/partition"),
                    "status": run.status.value,
                    "started": None if record.start_time is None else _fmt_ts(record.start_time),
                }
            )
    return runs


def registry_aliases(settings: Settings) -> list[dict[str, Any]]:
    """The champion and challenger of the primary and the cold-start model."""
    from jobs.platform import CHALLENGER, CHAMPION, configure_mlflow, version_by_alias
    from schemas.coldstart import COLDSTART_SUFFIX

    client = configure_mlflow(settings)
    models = []
    for name in (settings.model.name, settings.model.name + COLDSTART_SUFFIX):
        for alias in (CHAMPION, CHALLENGER):
            version = version_by_alias(client, model_name=name, alias=alias)
            if version is not None:
                models.append(
                    {
                        "model": name,
                        "alias": alias,
                        "version": str(version.version),
                        "run": str(version.run_id)[:8],
                    }
                )
    return models


def sync_lag(settings: Settings) -> tuple[int | None, int | str | None, int | None]:
    """``(predictions.current version, synced version, lag in versions)``; the synced
    version is a message when the store is unreachable, the lag None when either is unknown."""
    from jobs.platform import log_version
    from jobs.sync import synced_version
    from schemas.tables import PREDICTIONS_CURRENT

    current = log_version(settings, PREDICTIONS_CURRENT)  # delta-rs: no Spark session
    synced: int | str | None
    try:
        synced = synced_version(settings)
    except Exception as exc:  # the store may be down: status must still print
        synced = f"unreachable ({type(exc).__name__})"
    lag = current - synced if isinstance(current, int) and isinstance(synced, int) else None
    return current, synced, lag


def _fmt_ts(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
