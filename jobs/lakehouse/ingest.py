"""Ingest landing files into bronze (raw + metadata) and silver (typed, deduplicated).

Row accounting holds for every batch, from counts taken apart (``IngestResult``):
every row read is inserted into silver, updates a silver row, is a duplicate (within
the batch, or of silver), is superseded by another row of its key in the batch, or is
quarantined (a broken rule, or a conflicting re-send of an order); and silver grew by
exactly the rows inserted. A batch whose counts do not add up raises
``IngestAccountingError`` before its bronze rows are written, so the files stay new and
the next run reads them again. A file whose content (sha256) bronze has already seen
adds nothing, whatever its name. Sources: the bundled CDNOW file, or a landing folder
with ``orders/`` and ``customers/`` CSV or Parquet files (``schemas.sources``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lakehouse.landing import landing_files, read_landing, with_metadata
from jobs.lakehouse.merge import classify_batch, merge_silver
from jobs.lakehouse.rules import CONFLICTING_RESEND, CUSTOMERS_LAYER, ORDERS_LAYER, SourceLayer
from jobs.platform import (
    ensure_table,
    read_table,
    table_exists,
    table_path,
    table_version,
)
from schemas.settings import Settings
from schemas.sources import ORDERS_SOURCE
from schemas.tables import BRONZE_ORDERS, TableSpec

log = logging.getLogger(__name__)

SILVER_ROW = "_silver"  # the silver columns of a typed row, as one struct


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    """One batch's counts, each taken on its own.

    - ``rows_read``: rows of the batch (what bronze receives; ``bronze_written`` is the
      count bronze's commit reports, None until bronze is written);
    - ``silver_inserted`` / ``silver_updated``: the silver commit's operation metrics;
    - ``duplicates_in_batch`` / ``duplicates_in_silver`` / ``superseded``: found by key and
      value (``jobs.lakehouse.merge.BatchKeys``); ``new_keys`` / ``changed_keys``: the keys
      that classification expects the write to insert and update;
    - ``conflicts`` / ``quarantined``: rows counted in the quarantine table after its
      write (conflicting re-sends, and rows that broke a typing rule);
    - ``silver_rows_before`` / ``silver_rows_after``: silver's row count at the version
      read before the write and at the version the write committed.
    """

    source_file: str
    fingerprint: str
    batch_id: str
    skipped: bool
    rows_read: int = 0
    silver_inserted: int = 0
    silver_updated: int = 0
    duplicates_in_batch: int = 0
    duplicates_in_silver: int = 0
    superseded: int = 0
    conflicts: int = 0
    quarantined: int = 0
    new_keys: int = 0
    changed_keys: int = 0
    silver_version_before: int | None = None
    silver_version_after: int | None = None
    silver_rows_before: int = 0
    silver_rows_after: int = 0
    bronze_written: int | None = 0
    files: int = 1

    @property
    def duplicates_dropped(self) -> int:
        return self.duplicates_in_batch + self.duplicates_in_silver

    @property
    def silver_written(self) -> int:
        return self.silver_inserted + self.silver_updated

    def accounting_errors(self) -> list[str]:
        """Each accounting equation that does not hold, as a sentence (empty: accounted)."""
        errors = []
        kept = (
            self.silver_inserted
            + self.silver_updated
            + self.duplicates_in_batch
            + self.duplicates_in_silver
            + self.superseded
        )
        accounted = kept + self.conflicts + self.quarantined
        if self.rows_read != accounted:
            errors.append(
                f"rows read {self.rows_read} != inserted + updated + duplicates in batch "
                f"+ duplicates in silver + superseded + conflicts + quarantined = {accounted}"
            )
        grown = self.silver_rows_after - self.silver_rows_before
        if grown != self.silver_inserted:
            errors.append(
                f"silver grew by {grown} rows (version {self.silver_version_before} -> "
                f"{self.silver_version_after}) but the write reports {self.silver_inserted} inserted"
            )
        if (self.silver_inserted, self.silver_updated) != (self.new_keys, self.changed_keys):
            errors.append(
                f"the write inserted {self.silver_inserted} and updated {self.silver_updated} rows, "
                f"the batch holds {self.new_keys} new and {self.changed_keys} changed keys"
            )
        before, after = self.silver_version_before, self.silver_version_after
        if before is not None and after is not None and after - before not in (0, 1):
            errors.append(
                f"silver moved from version {before} to {after}: another writer committed "
                "during the batch"
            )
        if self.bronze_written is not None and self.bronze_written != self.rows_read:
            errors.append(f"bronze wrote {self.bronze_written} rows of {self.rows_read} read")
        return errors

    @property
    def accounted(self) -> bool:
        return not self.accounting_errors()

    def counts(self) -> str:
        """Every count, for messages and logs."""
        names = [
            "rows_read",
            "silver_inserted",
            "silver_updated",
            "duplicates_in_batch",
            "duplicates_in_silver",
            "superseded",
            "conflicts",
            "quarantined",
            "new_keys",
            "changed_keys",
            "silver_rows_before",
            "silver_rows_after",
            "silver_version_before",
            "silver_version_after",
            "bronze_written",
        ]
        return ", ".join(f"{name}={getattr(self, name)}" for name in names)


class IngestAccountingError(RuntimeError):
    """A batch whose independent counts do not add up: the message names every count."""

    def __init__(self, result: IngestResult) -> None:
        self.result = result
        super().__init__(
            f"row accounting does not hold for batch {result.batch_id} of {result.source_file}: "
            f"{'; '.join(result.accounting_errors())} ({result.counts()})"
        )


def cdnow_path() -> Path:
    """The CDNOW master file shipped inside the ``lifetimes`` package (not imported, only located)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'lifetimes' package is not installed: pip install lifetimes")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.exists():
        raise FileNotFoundError(f"CDNOW data not found at {path}")
    return path


def file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_cdnow(path: Path) -> pd.DataFrame:
    """CDNOW rows as strings (bronze keeps them raw); order ids are ``cdnow-<line>``."""
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=0,
        names=["customer_id", "order_date", "quantity", "amount"],
        dtype=str,
        engine="python",
    )
    raw.insert(0, "line_no", range(1, len(raw) + 1))
    raw.insert(0, "order_id", "cdnow-" + raw["line_no"].astype(str))
    return raw


def ingest_orders(
    spark: SparkSession, settings: Settings, *, path: Path, raw: pd.DataFrame | None = None
) -> IngestResult:
    """Ingest one orders file (CDNOW layout unless ``raw`` rows are given)."""
    fingerprint = file_fingerprint(path)
    if _seen_fingerprints(spark, settings, BRONZE_ORDERS, [fingerprint]):
        return IngestResult(
            source_file=str(path), fingerprint=fingerprint, batch_id="", skipped=True
        )
    rows = raw if raw is not None else read_cdnow(path)
    frame = spark.createDataFrame(rows.astype({"line_no": "int64"})).select(
        *[F.col(c).cast("string") for c in ORDERS_SOURCE.columns], F.col("line_no").cast("bigint")
    )
    batch_id = uuid.uuid4().hex
    bronze = with_metadata(frame, file_name=F.lit(path.name), fingerprint=F.lit(fingerprint))
    return _ingest_batch(
        spark,
        settings,
        ORDERS_LAYER,
        bronze=bronze,
        batch_id=batch_id,
        label=str(path),
        fingerprint=fingerprint,
        files=1,
    )


def ingest_landing(spark: SparkSession, settings: Settings, *, landing: Path) -> list[IngestResult]:
    """Ingest every new file under ``landing/orders`` and ``landing/customers`` (one batch each)."""
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    results = []
    for layer in (ORDERS_LAYER, CUSTOMERS_LAYER):
        files = landing_files(landing, layer.source)
        prints = {p: file_fingerprint(p) for p in files}
        seen = _seen_fingerprints(spark, settings, layer.bronze, list(prints.values()))
        new: dict[Path, str] = {}
        for path, fp in prints.items():
            if fp not in seen and fp not in new.values():
                new[path] = fp
        if not new:
            results.append(
                IngestResult(
                    source_file=str(landing / layer.source.name),
                    fingerprint="",
                    batch_id="",
                    skipped=True,
                    files=0,
                )
            )
            continue
        batch_id = uuid.uuid4().hex
        bronze = read_landing(spark, layer.source, new)
        results.append(
            _ingest_batch(
                spark,
                settings,
                layer,
                bronze=bronze,
                batch_id=batch_id,
                label=str(landing / layer.source.name),
                fingerprint=",".join(sorted(new.values())),
                files=len(new),
            )
        )
    return results


def _ingest_batch(
    spark: SparkSession,
    settings: Settings,
    layer: SourceLayer,
    *,
    bronze: DataFrame,
    batch_id: str,
    label: str,
    fingerprint: str,
    files: int,
) -> IngestResult:
    """Quarantine, silver, then bronze for one batch, checking its row accounting.

    Silver is read at one pinned version: the batch is classified against it by key
    (``classify_batch``), and its row counts before and after the write come from that
    version and the version the write committed. An order whose id silver holds with
    other values, or that the batch sends with different values, is quarantined with a
    ``conflicting_resend`` reason; a changed customer profile updates silver.

    The accounting is checked after the silver write and before bronze: a batch that does
    not add up raises ``IngestAccountingError`` with silver as its write committed it
    (named by version in the message) and its files not marked as done. The one check
    left for after bronze, that bronze's commit holds every row read, raises the same
    error with the files marked.
    """
    bronze = bronze.withColumn("batch_id", F.lit(batch_id)).select(*layer.bronze.columns)
    for spec in (layer.bronze, layer.quarantine, layer.silver):
        ensure_table(spark, settings, spec)
    key = layer.source.key
    silver_version = table_version(spark, settings, layer.silver)
    silver = read_table(spark, settings, layer.silver, version=silver_version)
    silver_before = silver.count()  # from the log's file statistics: no data file is read
    typed = layer.typed(bronze).withColumn(SILVER_ROW, F.struct(*layer.silver_columns()))
    keys = classify_batch(
        typed.select("reason", f"{SILVER_ROW}.*"),
        silver if silver_before else None,
        key=key,
        values=[c for c in layer.silver.columns if c not in (key, "batch_id")],
        update_changed=layer.update_changed,
    )
    if keys.conflicting:
        conflicting = spark.createDataFrame(
            list(keys.conflicting), "_conflict_key STRING, _conflict STRING"
        )
        typed = typed.join(
            F.broadcast(conflicting), typed[SILVER_ROW][key] == conflicting["_conflict_key"], "left"
        )
    else:
        typed = typed.withColumn("_conflict", F.lit(None).cast("string"))
    prints = fingerprint.split(",")
    in_batch = ", ".join(f"'{fp}'" for fp in prints)
    # Quarantine first, then silver, bronze last: the bronze fingerprint marks the files
    # as done, so a crash before it makes the re-run redo the whole batch (quarantine
    # replaces the files' rows, silver merges on its key: both stay exact; rows the crashed
    # run wrote to silver are then duplicates of silver).
    (
        typed.where(F.col("reason").isNotNull() | F.col("_conflict").isNotNull())
        .withColumn("reason", F.coalesce("reason", "_conflict"))
        .select(*layer.quarantine.columns)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"file_fingerprint IN ({in_batch})")
        .save(table_path(settings, layer.quarantine))
    )
    conflicts, quarantined = _quarantine_counts(spark, settings, layer.quarantine, prints)
    commit = merge_silver(
        spark,
        settings,
        layer.silver,
        rows=typed.where(F.col("reason").isNull() & F.col("_conflict").isNull()).select(
            f"{SILVER_ROW}.*"
        ),
        key=key,
        update_changed=layer.update_changed,
        read_version=silver_version,
        empty=silver_before == 0,
        deduplicate=keys.duplicates_in_batch + keys.superseded > 0,
    )
    silver_after = (
        silver_before
        if commit.version == silver_version
        else read_table(spark, settings, layer.silver, version=commit.version).count()
    )
    result = IngestResult(
        source_file=label,
        fingerprint=fingerprint,
        batch_id=batch_id,
        skipped=False,
        rows_read=keys.rows,
        silver_inserted=commit.inserted,
        silver_updated=commit.updated,
        duplicates_in_batch=keys.duplicates_in_batch,
        duplicates_in_silver=keys.duplicates_in_silver,
        superseded=keys.superseded,
        conflicts=conflicts,
        quarantined=quarantined,
        new_keys=keys.new_keys,
        changed_keys=keys.changed_keys,
        silver_version_before=silver_version,
        silver_version_after=commit.version,
        silver_rows_before=silver_before,
        silver_rows_after=silver_after,
        bronze_written=None,
        files=files,
    )
    if not result.accounted:  # before bronze: the files stay new, the next run redoes them
        raise IngestAccountingError(result)
    written = _append_bronze(spark, settings, layer, bronze, batch_id=batch_id)
    result = dataclasses.replace(result, bronze_written=written)
    if not result.accounted:
        raise IngestAccountingError(result)
    return result


def _append_bronze(
    spark: SparkSession, settings: Settings, layer: SourceLayer, bronze: DataFrame, *, batch_id: str
) -> int:
    """Append the batch to bronze; the rows its commit reports (0 when Delta committed
    nothing: the commit is known by the batch id it carries as user metadata)."""
    tag = f"ingest batch {batch_id}"
    path = table_path(settings, layer.bronze)
    bronze.write.format("delta").mode("append").option("userMetadata", tag).save(path)
    commit = DeltaTable.forPath(spark, path).history(1).first()
    if commit is None or commit["userMetadata"] != tag:
        return 0
    return int(commit["operationMetrics"]["numOutputRows"])


def _quarantine_counts(
    spark: SparkSession, settings: Settings, spec: TableSpec, fingerprints: list[str]
) -> tuple[int, int]:
    """(conflicting re-sends, rows that broke a rule) the quarantine table holds for the files."""
    conflict = F.col("reason").startswith(f"{CONFLICTING_RESEND}:")
    row = (
        read_table(spark, settings, spec)
        .where(F.col("file_fingerprint").isin(fingerprints))
        .agg(
            F.count_if(conflict).alias("conflicts"),
            F.count_if(~conflict | F.col("reason").isNull()).alias("other"),
        )
        .first()
    )
    return (int(row["conflicts"]), int(row["other"])) if row else (0, 0)


def _seen_fingerprints(
    spark: SparkSession, settings: Settings, bronze: TableSpec, fingerprints: list[str]
) -> set[str]:
    """The fingerprints among ``fingerprints`` that ``bronze`` holds already: from the Delta
    log without a Spark job when delta-rs can tell (``_seen_in_log``), else by Spark."""
    if not fingerprints:
        return set()
    seen = _seen_in_log(table_path(settings, bronze), set(fingerprints))
    if seen is not None:
        return seen
    if not table_exists(spark, settings, bronze):
        return set()
    rows = (
        read_table(spark, settings, bronze)
        .where(F.col("file_fingerprint").isin(fingerprints))
        .select("file_fingerprint")
        .distinct()
        .collect()
    )
    return {r[0] for r in rows}


def _seen_in_log(path: str, fingerprints: set[str]) -> set[str] | None:
    """``_seen_fingerprints`` without Spark: the per-file minimum and maximum of
    ``file_fingerprint`` in the Delta log (delta-rs) pick the files that may hold one of
    ``fingerprints`` (each ingest batch writes files of its own, so usually none or one),
    and only that column of only those files is read. Delta keeps 32-character prefixes of
    string statistics, so files are picked by prefix: a superset, made exact by the read.

    None when delta-rs cannot answer alone (a lake that is not a local folder, deletion
    vectors, an unreadable log): then Spark does."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    from deltalake import DeltaTable as RustDeltaTable
    from deltalake.exceptions import TableNotFoundError

    root = Path(path)
    if not root.is_dir():
        return None if "://" in path else set()  # a remote lake: Spark; no folder: no table
    try:
        table = RustDeltaTable(path)
        if "deletionVectors" in (table.protocol().reader_features or []):
            return None  # a file's rows may be deleted: its data files alone do not tell
        actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    except TableNotFoundError:
        return set()
    except Exception as exc:  # any reason delta-rs cannot read the log: Spark can
        log.info("delta-rs cannot read the log of %s (%s): asking Spark", path, exc)
        return None

    def may_hold(action: dict[str, object]) -> bool:
        low, high = action.get("min.file_fingerprint"), action.get("max.file_fingerprint")
        if not isinstance(low, str) or not isinstance(high, str):
            return True  # no statistics: read it
        n = min(len(low), len(high))
        return any(low[:n] <= fp[:n] <= high[:n] for fp in fingerprints)

    files = [str(root / unquote(str(a["path"]))) for a in actions if may_hold(a)]
    if not files:
        return set()
    found = (
        pads.dataset(files, format="parquet")
        .to_table(
            columns=["file_fingerprint"],
            filter=pc.field("file_fingerprint").isin(sorted(fingerprints)),
        )
        .column("file_fingerprint")
        .unique()
        .to_pylist()
    )
    return {str(fp) for fp in found}


def ingest_configured(spark: SparkSession, settings: Settings) -> list[IngestResult]:
    """The nightly ingest: the configured landing folder, or the bundled CDNOW file without one."""
    landing = settings.lakehouse.landing_dir
    if landing:
        return ingest_landing(spark, settings, landing=Path(landing).expanduser().resolve())
    return [ingest_orders(spark, settings, path=cdnow_path())]


def main(argv: list[str] | None = None) -> None:
    """``python -m jobs.lakehouse.ingest [--landing DIR]``: the configured (or given) ingest, alone."""
    import argparse

    from jobs.platform import get_spark
    from schemas.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m jobs.lakehouse.ingest", description=main.__doc__
    )
    parser.add_argument("--landing", type=Path, help="landing folder (default: settings, or CDNOW)")
    args = parser.parse_args(argv)
    settings = get_settings()
    spark = get_spark(settings)
    if args.landing:
        results = ingest_landing(spark, settings, landing=args.landing.resolve())
    else:
        results = ingest_configured(spark, settings)
    for result in results:
        print(result)


if __name__ == "__main__":
    main()
