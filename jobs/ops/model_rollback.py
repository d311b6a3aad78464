"""Roll back a bad model: champion alias back, predictions.current restored, serving store resynced.

The runbook's steps as one function, each verifiable:
1. the ``champion`` alias moves back to ``good_version``;
2. ``predictions.current`` is restored (Delta RESTORE) to the newest table version
   that holds no row of the bad model version (history stays append-only: the bad
   night's rows remain there, attributable to the bad version);
3. the serving store is rebuilt from the restored table (build, verify, swap).
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.platform import (
    CHAMPION,
    configure_mlflow,
    read_table,
    table_path,
    table_version,
    version_by_alias,
)
from jobs.sync import sync_full
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT


class RollbackError(RuntimeError):
    pass


@dataclass(frozen=True, kw_only=True)
class RollbackResult:
    bad_version: str
    good_version: str
    restored_to: int
    current_version_before: int
    documents_synced: int


def clean_current_version(spark: SparkSession, settings: Settings, *, bad_version: str) -> int:
    """The newest version of predictions.current without any row scored by ``bad_version``."""
    latest = table_version(spark, settings, PREDICTIONS_CURRENT)
    for version in range(latest, -1, -1):
        rows = read_table(spark, settings, PREDICTIONS_CURRENT, version=version).where(
            (F.col("model_name") == settings.model.name) & (F.col("model_version") == bad_version)
        )
        if rows.limit(1).count() == 0:
            return version
    raise RollbackError(f"every version of {PREDICTIONS_CURRENT.name} holds model v{bad_version}")


def rollback(spark: SparkSession, settings: Settings, *, good_version: str) -> RollbackResult:
    client = configure_mlflow(settings)
    name = settings.model.name
    bad = version_by_alias(client, model_name=name, alias=CHAMPION)
    if bad is None:
        raise RollbackError(f"{name} has no {CHAMPION} alias to roll back")
    if str(bad.version) == good_version:
        raise RollbackError(f"{name} v{good_version} is already the champion")
    client.get_model_version(name, good_version)  # raises when the version does not exist
    before = table_version(spark, settings, PREDICTIONS_CURRENT)
    target = clean_current_version(spark, settings, bad_version=str(bad.version))
    client.set_registered_model_alias(name, CHAMPION, good_version)
    if target != before:
        DeltaTable.forPath(spark, table_path(settings, PREDICTIONS_CURRENT)).restoreToVersion(
            target
        )
    synced = sync_full(spark, settings)
    return RollbackResult(
        bad_version=str(bad.version),
        good_version=good_version,
        restored_to=target,
        current_version_before=before,
        documents_synced=synced.documents,
    )
