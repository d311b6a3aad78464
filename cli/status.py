"""``lakescore status``: last runs, the current champion, and how far MongoDB lags Delta.

Read-only and Spark-free: the Dagster instance, the MLflow client, the Delta log through
delta-rs, and the sync watermark in MongoDB.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from schemas.settings import Settings


def show_status(settings: Settings, *, console: Console) -> None:
    console.print(_runs_table(settings))
    console.print(_models_table(settings))
    console.print(_sync_table(settings))


def _runs_table(settings: Settings) -> Table:
    from dagster import DagsterInstance

    from cli.runs import dagster_home

    dagster_home(settings)
    table = Table(title="last Dagster runs")
    for col in ("run", "job", "partition", "status", "started"):
        table.add_column(col)
    with DagsterInstance.get() as instance:
        for record in instance.get_run_records(limit=8):
            run = record.dagster_run
            started = record.start_time
            table.add_row(
                run.run_id[:8],
                run.job_name,
                run.tags.get("dagster/partition", "-"),
                run.status.value,
                "-" if started is None else _fmt_ts(started),
            )
    return table


def _models_table(settings: Settings) -> Table:
    from jobs.platform import CHALLENGER, CHAMPION, configure_mlflow, version_by_alias
    from schemas.coldstart import COLDSTART_SUFFIX

    client = configure_mlflow(settings)
    table = Table(title="models in the registry")
    for col in ("model", "alias", "version", "run"):
        table.add_column(col)
    for name in (settings.model.name, settings.model.name + COLDSTART_SUFFIX):
        for alias in (CHAMPION, CHALLENGER):
            version = version_by_alias(client, model_name=name, alias=alias)
            if version is not None:
                table.add_row(name, alias, str(version.version), str(version.run_id)[:8])
    return table


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


def _sync_table(settings: Settings) -> Table:
    table = Table(title="serving store")
    for col in ("predictions.current version", "synced version", "lag (versions)"):
        table.add_column(col)
    current, synced, lag = sync_lag(settings)
    table.add_row(str(current), str(synced), "-" if lag is None else str(lag))
    return table


def _fmt_ts(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
