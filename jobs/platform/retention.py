"""Retention: what the weekly maintenance job deletes, and what it must keep.

Three parts, each counted in ``RetentionResult``:

1. **Delta tables** (every table of ``schemas.tables.ALL_TABLES`` that exists): the
   table properties ``delta.deletedFileRetentionDuration`` (``retention.vacuum_hours``)
   and ``delta.logRetentionDuration`` (``retention.log_retention_days``) set where they
   differ (one metadata commit, the first time), then ``VACUUM`` with
   ``retention.vacuum_hours``: data files out of the latest version for longer than
   that are deleted. Delta records each VACUUM as two commits (``VACUUM START`` /
   ``VACUUM END``) whose metrics give the files and bytes removed. The settings refuse
   a retention shorter than the rollback window or the sync's change-feed window, so
   every version a rollback or an incremental sync within its window reads keeps its
   files. Old log entries go at Delta's next checkpoint, not here. Runs under the
   ``night`` lease: no night writes a table, and no rollback reads an old version,
   while files are deleted.
2. **Serving collections** left behind by full syncs: ``<collection>__*`` in the
   serving database (a ``<collection>__v<version>_<run>`` whose run died before its
   commit). Never a served collection (``mongo.collection``, every collection with a
   watermark document in ``sync_state``, such as a second deployment reading another
   name, the collection each watermark points at and those it keeps as replaced) nor
   its priors.
   Runs under the ``sync`` lease (taken at once or not at all): while a sync runs its
   build collection is in use, and the step is skipped, saying so.
3. **MLflow runs** of the configured experiment that no registered model version comes
   from, finished, and started more than ``retention.mlflow_run_days`` ago: their
   artifacts are deleted (the run's folder and the models logged from it that no
   version refers to); the run itself, its metrics, params and tags stay, tagged
   ``lakescore.artifacts_pruned``. Runs behind a registered version keep everything.

Pure compute: no Dagster here (``pipelines/lakehouse/maintenance.py`` wires it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from mlflow.entities import LoggedModel, Run, ViewType
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from pymongo.database import Database
from pyspark.sql import SparkSession

from jobs.platform.lake import table_exists, table_path
from jobs.platform.lease import (
    LEASES_COLLECTION,
    NIGHT_LEASE,
    SYNC_LEASE,
    LeaseHeldError,
    default_holder,
    hold_lease,
    leased,
)
from jobs.platform.mongo import mongo_client, serving_db, with_retries
from jobs.platform.registry import configure_mlflow
from jobs.platform.spark import session_conf
from schemas.serving import PRIORS_COLLECTION_SUFFIX, SYNC_STATE_COLLECTION
from schemas.settings import RetentionSettings, Settings
from schemas.tables import ALL_TABLES, TableSpec

log = logging.getLogger(__name__)

PRUNED_TAG = "lakescore.artifacts_pruned"
# What a full sync names the collections it builds: ``<collection>__<what>``.
SYNC_BUILD_SEPARATOR = "__"
LOG_RETENTION = "delta.logRetentionDuration"
FILE_RETENTION = "delta.deletedFileRetentionDuration"
VACUUM_LOGGING = "spark.databricks.delta.vacuum.logging.enabled"
# The tasks Delta's VACUUM lists a table's folders with (Spark's default: 10,000).
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


@dataclass(frozen=True, kw_only=True)
class TableVacuum:
    table: str
    files_removed: int
    bytes_removed: int | None  # None: Delta did not report it
    properties_set: dict[str, str]  # the retention properties this run changed


@dataclass(frozen=True, kw_only=True)
class CollectionPrune:
    dropped: tuple[str, ...]
    kept: tuple[str, ...]  # served collections and their priors
    skipped: str | None = None  # why nothing was looked at (a running sync)


@dataclass(frozen=True, kw_only=True)
class RunPrune:
    runs: tuple[str, ...]  # run ids whose artifacts were deleted
    logged_models: int
    bytes_removed: int | None  # None: not all on a local artifact store


@dataclass(frozen=True, kw_only=True)
class RetentionResult:
    tables: tuple[TableVacuum, ...]
    collections: CollectionPrune
    mlflow: RunPrune
    vacuum_hours: float
    log_retention_days: int

    @property
    def files_removed(self) -> int:
        return sum(t.files_removed for t in self.tables)

    @property
    def bytes_removed(self) -> int | None:
        sizes = [t.bytes_removed for t in self.tables]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def metadata(self) -> dict[str, Any]:
        """Flat values for Dagster metadata (-1: not known)."""
        bytes_removed = self.bytes_removed
        return {
            "vacuum_hours": self.vacuum_hours,
            "log_retention_days": self.log_retention_days,
            "tables_vacuumed": len(self.tables),
            "files_removed": self.files_removed,
            "bytes_removed": -1 if bytes_removed is None else bytes_removed,
            "properties_set": sum(len(t.properties_set) for t in self.tables),
            "collections_dropped": len(self.collections.dropped),
            "collections_dropped_names": ", ".join(self.collections.dropped) or "-",
            "collections_skipped": self.collections.skipped or "-",
            "mlflow_runs_pruned": len(self.mlflow.runs),
            "mlflow_logged_models_pruned": self.mlflow.logged_models,
            "mlflow_bytes_removed": (
                -1 if self.mlflow.bytes_removed is None else self.mlflow.bytes_removed
            ),
            **{f"files_removed.{t.table}": t.files_removed for t in self.tables},
        }


def retention_properties(cfg: RetentionSettings) -> dict[str, str]:
    """The Delta table properties of the retention settings."""
    return {
        FILE_RETENTION: _interval(cfg.vacuum_hours * 3600),
        LOG_RETENTION: f"interval {cfg.log_retention_days} days",
    }


def apply_retention(
    spark: SparkSession,
    settings: Settings,
    *,
    specs: tuple[TableSpec, ...] = ALL_TABLES,
    now: dt.datetime | None = None,
) -> RetentionResult:
    """The weekly retention: Delta tables, leftover serving collections, MLflow artifacts."""
    holder = f"{default_holder()} maintenance"
    with leased(settings, name=NIGHT_LEASE, holder=holder):
        tables = tuple(
            vacuum_table(spark, settings, spec)
            for spec in specs
            if table_exists(spark, settings, spec)
        )
    collections = prune_collections(settings, holder=holder)
    runs = prune_runs(settings, now=now)
    return RetentionResult(
        tables=tables,
        collections=collections,
        mlflow=runs,
        vacuum_hours=settings.retention.vacuum_hours,
        log_retention_days=settings.retention.log_retention_days,
    )


def vacuum_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> TableVacuum:
    """Set the table's retention properties where they differ, then VACUUM it."""
    path = table_path(settings, spec)
    wanted = retention_properties(settings.retention)
    rows = spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    have = {row["key"]: row["value"] for row in rows}
    changed = {key: value for key, value in wanted.items() if have.get(key) != value}
    if changed:
        log.info("%s: setting %s", spec.name, changed)
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
    table = DeltaTable.forPath(spark, path)
    before = int(table.history(1).select("version").first()[0])  # type: ignore[index]
    # VACUUM START / END commits carry the counts (Delta leaves them off on some stores).
    with session_conf(
        spark,
        {
            VACUUM_LOGGING: "true",
            LISTING_PARALLELISM: str(listing_parallelism(spark, settings.retention)),
        },
    ):
        table.vacuum(settings.retention.vacuum_hours)
    files, size = _vacuum_counts(table, after=before)
    log.info("%s: VACUUM removed %d files (%s bytes)", spec.name, files, size)
    return TableVacuum(
        table=spec.name, files_removed=files, bytes_removed=size, properties_set=changed
    )


def listing_parallelism(spark: SparkSession, cfg: RetentionSettings) -> int:
    """``retention.vacuum_listing_parallelism``, or the cores Spark has (at least 2)."""
    if cfg.vacuum_listing_parallelism:
        return cfg.vacuum_listing_parallelism
    return max(2, int(spark.sparkContext.defaultParallelism))


def _vacuum_counts(table: DeltaTable, *, after: int) -> tuple[int, int | None]:
    """Files deleted (VACUUM END) and bytes (VACUUM START) of the commits after ``after``."""
    rows = (
        table.history()
        .where(f"version > {after} AND operation IN ('VACUUM START', 'VACUUM END')")
        .select("operation", "operationMetrics")
        .collect()
    )
    files, size = 0, None
    for row in rows:
        metrics = dict(row["operationMetrics"] or {})
        if row["operation"] == "VACUUM END":
            files += int(metrics.get("numDeletedFiles", 0))
        elif "sizeOfDataToDelete" in metrics:
            size = (size or 0) + int(metrics["sizeOfDataToDelete"])
    return files, (size if size is not None or files else 0)


def _interval(seconds: float) -> str:
    whole = max(1, int(seconds))
    return f"interval {whole // 3600} hours" if whole % 3600 == 0 else f"interval {whole} seconds"


# ---------------------------------------------------------------- serving collections


def served_collections(db: Database[dict[str, Any]], settings: Settings) -> set[str]:
    """Collections readers may be served from: the configured one and every collection
    with a watermark document in ``sync_state`` (one a sync committed, even if a failed
    run cleared its version since), with their priors."""
    served = {settings.mongo.collection}
    for state in db[SYNC_STATE_COLLECTION].find({}, {"_id": 1, "active": 1, "retired": 1}):
        name = str(state["_id"])
        if ":" not in name:  # not a run marker (``<collection>:run``)
            served.add(name)
            if isinstance(state.get("active"), str):
                served.add(state["active"])
            for entry in state.get("retired") or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    served.add(entry["name"])
    return served | {name + PRIORS_COLLECTION_SUFFIX for name in served}


def leftover_collections(
    db: Database[dict[str, Any]], settings: Settings
) -> tuple[list[str], list[str]]:
    """(collections a full sync left behind, served ones that matched but are kept)."""
    prefix = settings.mongo.collection + SYNC_BUILD_SEPARATOR
    protected = served_collections(db, settings) | {LEASES_COLLECTION, SYNC_STATE_COLLECTION}
    names = sorted(n for n in db.list_collection_names() if n.startswith(prefix))
    return [n for n in names if n not in protected], [n for n in names if n in protected]


def prune_collections(settings: Settings, *, holder: str) -> CollectionPrune:
    """Drop the leftovers of full syncs, holding the ``sync`` lease (skipped when held)."""
    client = mongo_client(settings)
    try:
        db = serving_db(client, settings)
        try:
            with hold_lease(db, name=SYNC_LEASE, holder=holder, ttl_s=settings.lease.ttl_s):
                stale, kept = with_retries(settings, leftover_collections, db, settings)
                for name in stale:
                    log.info("dropping %s.%s (left by a full sync)", db.name, name)
                    with_retries(settings, db.drop_collection, name)
        except LeaseHeldError as exc:
            log.warning("serving collections not pruned: %s", exc)
            return CollectionPrune(dropped=(), kept=(), skipped=str(exc))
    finally:
        client.close()
    return CollectionPrune(dropped=tuple(stale), kept=tuple(kept))


# ---------------------------------------------------------------- MLflow artifacts


def prune_runs(settings: Settings, *, now: dt.datetime | None = None) -> RunPrune:
    """Delete the artifacts of old runs without a registered model version."""
    client = configure_mlflow(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        return RunPrune(runs=(), logged_models=0, bytes_removed=0)
    when = now or dt.datetime.now(dt.UTC)
    cutoff_ms = int(
        (when - dt.timedelta(days=settings.retention.mlflow_run_days)).timestamp() * 1000
    )
    registered_runs, registered_models = _registered(client)
    models_by_run: dict[str, list[LoggedModel]] = {}
    for model in _logged_models(client, experiment.experiment_id):
        if model.source_run_id and model.model_id not in registered_models:
            models_by_run.setdefault(model.source_run_id, []).append(model)
    pruned: list[str] = []
    logged = 0
    sizes: list[int | None] = []
    for run in _old_runs(client, experiment.experiment_id, before_ms=cutoff_ms):
        run_id = run.info.run_id
        if run_id in registered_runs or PRUNED_TAG in run.data.tags:
            continue
        if run.info.status in ("RUNNING", "SCHEDULED"):
            continue
        uris = [run.info.artifact_uri or ""]
        uris += [m.artifact_location for m in models_by_run.get(run_id, [])]
        for uri in filter(None, uris):
            sizes.append(_size(uri))
            get_artifact_repository(uri).delete_artifacts()
        logged += len(models_by_run.get(run_id, []))
        client.set_tag(run_id, PRUNED_TAG, when.isoformat(timespec="seconds"))
        pruned.append(run_id)
        log.info("MLflow run %s: artifacts deleted (no registered model version)", run_id)
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    return RunPrune(runs=tuple(pruned), logged_models=logged, bytes_removed=total)


def _registered(client: MlflowClient) -> tuple[set[str], set[str]]:
    """Run ids and logged-model ids that registered model versions come from."""
    runs: set[str] = set()
    models: set[str] = set()
    token: str | None = None
    while True:
        page = client.search_model_versions(max_results=1000, page_token=token)
        for version in page:
            if version.run_id:
                runs.add(version.run_id)
            model_id = getattr(version, "model_id", None)
            if model_id:
                models.add(model_id)
        token = page.token
        if not token:
            return runs, models


def _logged_models(client: MlflowClient, experiment_id: str) -> Iterator[LoggedModel]:
    token: str | None = None
    while True:
        page = client.search_logged_models([experiment_id], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _old_runs(client: MlflowClient, experiment_id: str, *, before_ms: int) -> Iterator[Run]:
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"attributes.start_time < {before_ms}",
            run_view_type=ViewType.ALL,
            max_results=1000,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def _size(uri: str) -> int | None:
    """Bytes under a local artifact folder (None: not on the local filesystem)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    root = Path(unquote(parsed.path))
    if not root.exists():
        return 0
    return sum(
        (Path(folder) / name).stat().st_size for folder, _, names in os.walk(root) for name in names
    )
