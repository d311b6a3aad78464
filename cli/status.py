"""``lakescore status``: last runs, the current champion, and how far MongoDB lags Delta.

Read-only and Spark-free, and quick (about a second with the embedded stores): the last
runs and the registry's aliases are read from their SQLite files directly when the Dagster
instance and the MLflow registry are the embedded ones (Dagster's default run storage,
a ``sqlite:///`` tracking URI), read-only and without importing either library (their
imports and store set-up took 4 of status's 8 s); any other store, or a file whose schema
is not the expected one, goes through the Dagster instance and the MLflow client. The
Delta version is read from the log by delta-rs, and the sync watermark from MongoDB with a
short timeout (an embedded server that is not running is told at once).
``status_report`` gives the figures as plain data (``lakescore status --json``);
``show_status`` prints them as tables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from schemas.settings import Settings

log = logging.getLogger(__name__)

# Keys of dagster.yaml that move the runs out of the default SQLite run storage.
_RUN_STORAGE_KEYS = ("storage", "run_storage")
_STATUS_TIMEOUT_MS = 1000  # the store's answer, at most (settings.mongo may allow more)


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
    home = Path(os.environ.get("DAGSTER_HOME") or Path(settings.data_dir) / "dagster")
    runs_db = _default_run_storage(home)
    if runs_db is not None:
        try:
            return _runs_from_sqlite(runs_db, limit=limit)
        except sqlite3.Error as exc:  # another schema: the instance knows it
            log.info("reading %s directly failed (%s): asking the Dagster instance", runs_db, exc)
    return _runs_from_instance(settings, limit=limit)


def _default_run_storage(home: Path) -> Path | None:
    """``<home>/history/runs.db`` when the instance keeps its runs there (no storage
    configured in its dagster.yaml), else None."""
    config = home / "dagster.yaml"
    try:
        loaded = yaml.safe_load(config.read_text()) if config.exists() else {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(loaded, dict) or any(k in loaded for k in _RUN_STORAGE_KEYS):
        return None
    return home / "history" / "runs.db"


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    try:
        yield connection
    finally:
        connection.close()


def _runs_from_sqlite(path: Path, *, limit: int) -> list[dict[str, Any]]:
    if not path.exists():  # no run yet
        return []
    with _read_only(path) as db:
        rows = db.execute(
            "SELECT run_id, pipeline_name, partition, status, start_time FROM runs "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [
        {
            "run": str(run_id)[:8],
            "job": job,
            "partition": partition,
            "status": status,
            "started": None if start is None else _fmt_ts(float(start)),
        }
        for run_id, job, partition, status, start in rows
    ]


def _runs_from_instance(settings: Settings, *, limit: int) -> list[dict[str, Any]]:
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


def _model_names(settings: Settings) -> list[str]:
    from schemas.coldstart import COLDSTART_SUFFIX

    return [settings.model.name, settings.model.name + COLDSTART_SUFFIX]


def registry_aliases(settings: Settings) -> list[dict[str, Any]]:
    """The champion and challenger of the primary and the cold-start model."""
    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        try:
            return _aliases_from_sqlite(Path(uri.removeprefix("sqlite:///")), settings)
        except sqlite3.Error as exc:  # another schema: the client knows it
            log.info("reading %s directly failed (%s): asking the MLflow client", uri, exc)
    return _aliases_from_client(settings)


def _aliases(settings: Settings) -> list[tuple[str, str]]:
    from schemas.models import CHALLENGER, CHAMPION

    return [(name, alias) for name in _model_names(settings) for alias in (CHAMPION, CHALLENGER)]


def _aliases_from_sqlite(path: Path, settings: Settings) -> list[dict[str, Any]]:
    if not path.exists():  # no model registered yet
        return []
    models = []
    with _read_only(path) as db:
        for name, alias in _aliases(settings):
            found = db.execute(
                "SELECT a.version, v.run_id FROM registered_model_aliases a "
                "JOIN model_versions v ON v.workspace = a.workspace AND v.name = a.name "
                "AND v.version = a.version "
                "WHERE a.workspace = 'default' AND a.name = ? AND a.alias = ?",
                (name, alias),
            ).fetchone()
            if found is not None:
                version, run_id = found
                models.append(
                    {"model": name, "alias": alias, "version": str(version), "run": str(run_id)[:8]}
                )
    return models


def _aliases_from_client(settings: Settings) -> list[dict[str, Any]]:
    from jobs.platform import configure_mlflow, version_by_alias

    client = configure_mlflow(settings)
    models = []
    for name, alias in _aliases(settings):
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
    from schemas.tables import PREDICTIONS_CURRENT

    current = _log_version(settings.table_path(PREDICTIONS_CURRENT.name))
    synced: int | str | None
    try:
        synced = synced_version(settings)
    except EmbeddedServerDown as exc:
        synced = f"unreachable ({exc})"
    except Exception as exc:  # the store may be down: status must still print
        synced = f"unreachable ({type(exc).__name__})"
    lag = current - synced if isinstance(current, int) and isinstance(synced, int) else None
    return current, synced, lag


def _log_version(path: str) -> int | None:
    """The table's latest version from its Delta log (delta-rs); None when there is none."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return int(DeltaTable(path).version())
    except TableNotFoundError:
        return None


class EmbeddedServerDown(ConnectionError):
    """The embedded Mongo-wire server is not running (nothing listens on its port)."""


def synced_version(settings: Settings) -> int | None:
    """The Delta version the serving collection holds (its sync watermark), read with a
    short timeout; ``EmbeddedServerDown`` at once when the embedded server is not running."""
    from pymongo import MongoClient

    from schemas.serving import SYNC_STATE_COLLECTION

    cfg = settings.mongo
    if not cfg.uri:
        try:
            socket.create_connection(("127.0.0.1", cfg.local_port), timeout=0.5).close()
        except OSError as exc:
            raise EmbeddedServerDown(
                f"the embedded server is not running on port {cfg.local_port}; "
                "lakescore mongo starts it"
            ) from exc
    timeout = min(cfg.server_selection_timeout_ms, _STATUS_TIMEOUT_MS)
    client: MongoClient[dict[str, Any]] = MongoClient(
        cfg.effective_uri, serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout
    )
    try:
        state = client[cfg.database][SYNC_STATE_COLLECTION].find_one({"_id": cfg.collection})
    finally:
        client.close()
    version = (state or {}).get("delta_version")
    return None if version is None else int(version)


def _fmt_ts(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
