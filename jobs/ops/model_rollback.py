"""Roll back one bad model: its rows of predictions.current restored, its champion alias
back, the serving store resynced. Every other model's rows stay as they are.

The runbook's steps as one function, each verifiable:
1. the model's rows of ``predictions.current`` are restored, in one commit that
   overwrites only the model's partition (``replaceWhere model_name = '<model>'``):
   - from the newest table version whose rows of the model hold no row of the bad
     model version (the bad version is the one the ``champion`` alias points at);
   - when no readable version has such rows (the bad version was the model's first,
     or older versions were vacuumed), rebuilt from ``predictions.history``: the
     champion rows of ``good_version``, the newest score date per customer;
   - when neither holds a row, nothing is changed and the rollback is refused.
   History stays append-only: the bad night's rows remain there, attributable to the
   bad version.
2. the model's ``champion`` alias moves back to ``good_version``. After the restore,
   so that a rollback interrupted in between can simply be run again (the alias still
   names the bad version, and the restored rows are already clean);
3. the serving store is rebuilt from the table (build, verify, point readers at it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

from mlflow.exceptions import MlflowException
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.platform import (
    CHAMPION,
    NIGHT_LEASE,
    Lease,
    LeaseHeldError,
    configure_mlflow,
    default_holder,
    leased,
    read_table,
    retrain_lease,
    table_exists,
    table_path,
    table_version,
    version_by_alias,
)
from jobs.scoring import current_rows
from jobs.sync import sync_full
from schemas.settings import Settings, find_definition
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY

Source = Literal["current", "history", "unchanged"]


class RollbackError(RuntimeError):
    pass


@dataclass(frozen=True, kw_only=True)
class RollbackResult:
    model_name: str
    bad_version: str
    good_version: str
    # Where the model's rows came from: an older version of current, the champion rows
    # of history, or nowhere (the latest version's rows of the model were already clean).
    source: Source
    restored_from: int | None  # the version of current read (None: from history)
    rows_restored: int  # the model's rows in current after the rollback
    model_versions: tuple[str, ...]  # the model versions those rows were scored by
    current_version_before: int
    current_version_after: int
    documents_synced: int


def clean_current_version(
    spark: SparkSession, settings: Settings, *, model_name: str, bad_version: str
) -> int | None:
    """The newest version of predictions.current whose rows of ``model_name`` are there
    (at least one) and none of them scored by ``bad_version``; None when no readable
    version has such rows. Other models' rows do not count either way."""
    latest = table_version(spark, settings, PREDICTIONS_CURRENT)
    for version in range(latest, -1, -1):
        of_model = read_table(spark, settings, PREDICTIONS_CURRENT, version=version).where(
            F.col("model_name") == model_name
        )
        counts = of_model.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count(F.when(F.col("model_version") == bad_version, 1)).alias("bad"),
        )
        try:
            row = counts.first()
        except (PySparkException, Py4JError):
            return None  # vacuumed or its log cleaned up: older versions are gone too
        if row is not None and row["rows"] > 0 and row["bad"] == 0:
            return version
    return None


def history_rows(
    spark: SparkSession, settings: Settings, *, model_name: str, version: str
) -> DataFrame:
    """The model's rows for current rebuilt from history: the champion rows scored by
    ``version``, the newest score date per customer, in current's columns."""
    if not table_exists(spark, settings, PREDICTIONS_HISTORY):
        return spark.createDataFrame([], PREDICTIONS_CURRENT.ddl)
    champion = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        (F.col("model_name") == model_name)
        & (F.col("model_version") == version)
        & (F.col("model_role") == CHAMPION)
    )
    newest = Window.partitionBy("customer_id").orderBy(
        F.col("score_date").desc(), F.col("scored_at").desc()
    )
    # Without the other versions' scores of those nights: the versions a split serves
    # tonight are not the ones scored beside that champion then.
    return current_rows(
        champion.withColumn("_rank", F.row_number().over(newest)).where(F.col("_rank") == 1),
        None,
    )


def _replace_model_rows(
    spark: SparkSession, settings: Settings, rows: DataFrame, *, model_name: str
) -> None:
    """Overwrite the model's partition of current with ``rows``, in one commit."""
    (
        rows.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"model_name = '{model_name}'")
        .save(table_path(settings, PREDICTIONS_CURRENT))
    )


def _model_versions(spark: SparkSession, settings: Settings, *, model_name: str) -> tuple[str, ...]:
    rows = (
        read_table(spark, settings, PREDICTIONS_CURRENT)
        .where(F.col("model_name") == model_name)
        .select("model_version")
        .distinct()
        .collect()
    )
    return tuple(sorted(str(r[0]) for r in rows))


def rollback(
    spark: SparkSession,
    settings: Settings,
    *,
    good_version: str,
    model_name: str | None = None,
) -> RollbackResult:
    """Roll ``model_name`` (default: the primary model) back to ``good_version``.

    Holds the model's ``retrain:<model>`` lease (no promotion moves its alias meanwhile)
    and the ``night`` lease (no night writes ``predictions.current`` meanwhile); the
    resync takes the ``sync`` lease itself.
    """
    name = model_name or settings.model.name
    try:
        find_definition(settings, name)
    except KeyError as exc:
        raise RollbackError(str(exc.args[0])) from exc
    holder = f"{default_holder()} rollback {name}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(leased(settings, name=retrain_lease(name), holder=holder))
            night = stack.enter_context(leased(settings, name=NIGHT_LEASE, holder=holder))
        except LeaseHeldError as exc:
            raise RollbackError(f"{exc}; try again once that run is done") from exc
        return _rollback(spark, settings, name=name, good_version=good_version, night=night)


def _rollback(
    spark: SparkSession, settings: Settings, *, name: str, good_version: str, night: Lease
) -> RollbackResult:
    client = configure_mlflow(settings)
    bad = version_by_alias(client, model_name=name, alias=CHAMPION)
    if bad is None:
        raise RollbackError(f"{name} has no {CHAMPION} alias to roll back")
    bad_version = str(bad.version)
    if bad_version == good_version:
        raise RollbackError(f"{name} v{good_version} is already the champion")
    try:
        client.get_model_version(name, good_version)
    except MlflowException as exc:
        raise RollbackError(f"{name} has no version {good_version} in the registry") from exc
    if not table_exists(spark, settings, PREDICTIONS_CURRENT):
        raise RollbackError(f"{PREDICTIONS_CURRENT.name} does not exist: nothing to restore")

    before = table_version(spark, settings, PREDICTIONS_CURRENT)
    target = clean_current_version(spark, settings, model_name=name, bad_version=bad_version)
    source: Source
    if target == before:
        source, rows = "unchanged", None
    elif target is not None:
        source = "current"
        rows = read_table(spark, settings, PREDICTIONS_CURRENT, version=target).where(
            F.col("model_name") == name
        )
    else:
        source = "history"
        rows = history_rows(spark, settings, model_name=name, version=good_version)
        if rows.isEmpty():
            raise RollbackError(
                f"no readable version of {PREDICTIONS_CURRENT.name} holds rows of {name} "
                f"without v{bad_version}, and {PREDICTIONS_HISTORY.name} has no {CHAMPION} "
                f"rows of {name} v{good_version}: nothing to restore"
            )
    if rows is not None:
        night.check()
        _replace_model_rows(spark, settings, rows, model_name=name)
    after = table_version(spark, settings, PREDICTIONS_CURRENT)
    restored = (
        read_table(spark, settings, PREDICTIONS_CURRENT).where(F.col("model_name") == name).count()
    )
    versions = _model_versions(spark, settings, model_name=name)

    # Compare-and-set: the alias moves only from the version this rollback read.
    now = version_by_alias(client, model_name=name, alias=CHAMPION)
    if now is None or str(now.version) != bad_version:
        moved = "gone" if now is None else f"now v{now.version}"
        raise RollbackError(
            f"{name}'s {CHAMPION} alias moved during the rollback (read v{bad_version}, {moved}): "
            f"left as it is; {name}'s rows of {PREDICTIONS_CURRENT.name} are restored"
        )
    client.set_registered_model_alias(name, CHAMPION, good_version)
    synced = sync_full(spark, settings)
    return RollbackResult(
        model_name=name,
        bad_version=bad_version,
        good_version=good_version,
        source=source,
        restored_from=target,
        rows_restored=restored,
        model_versions=versions,
        current_version_before=before,
        current_version_after=after,
        documents_synced=synced.documents,
    )
