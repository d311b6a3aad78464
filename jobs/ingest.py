"""Ingest order files into bronze (raw + metadata) and silver (typed, deduplicated).

Row accounting holds for every batch: rows read = silver inserted + duplicates
dropped + quarantined. Re-ingesting a file with the same content adds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lake import ensure_table, read_table, table_exists, table_path
from schemas.settings import Settings
from schemas.tables import BRONZE_ORDERS, QUARANTINE_ORDERS, SILVER_ORDERS


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    source_file: str
    fingerprint: str
    batch_id: str
    skipped: bool
    rows_read: int = 0
    silver_inserted: int = 0
    duplicates_dropped: int = 0
    quarantined: int = 0

    @property
    def accounted(self) -> bool:
        return self.rows_read == self.silver_inserted + self.duplicates_dropped + self.quarantined


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
    batch_id = uuid.uuid4().hex
    if _already_ingested(spark, settings, fingerprint):
        return IngestResult(
            source_file=str(path), fingerprint=fingerprint, batch_id="", skipped=True
        )
    rows = raw if raw is not None else read_cdnow(path)
    bronze = (
        spark.createDataFrame(rows.astype({"line_no": "int64"}))
        .withColumn("source_file", F.lit(path.name))
        .withColumn("file_fingerprint", F.lit(fingerprint))
        .withColumn("ingested_at", F.current_timestamp())
        .withColumn("batch_id", F.lit(batch_id))
        .select(*BRONZE_ORDERS.columns)
    )
    typed = _typed(bronze)
    bad = typed.where(F.col("reason").isNotNull())
    good = typed.where(F.col("reason").isNull())

    ensure_table(spark, settings, BRONZE_ORDERS)
    ensure_table(spark, settings, QUARANTINE_ORDERS)
    ensure_table(spark, settings, SILVER_ORDERS)
    # Quarantine first, then silver, then bronze last: the bronze fingerprint marks
    # the file as done, so a crash before it makes the re-run redo the whole batch
    # (silver merges on order id, quarantine replaces the file's rows: both stay exact).
    (
        bad.select(*QUARANTINE_ORDERS.columns)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"file_fingerprint = '{fingerprint}'")
        .save(table_path(settings, QUARANTINE_ORDERS))
    )
    inserted, dupes = _merge_silver(spark, settings, good)
    bronze.write.format("delta").mode("append").save(table_path(settings, BRONZE_ORDERS))
    n_read = len(rows)
    n_bad = bad.count()
    return IngestResult(
        source_file=str(path),
        fingerprint=fingerprint,
        batch_id=batch_id,
        skipped=False,
        rows_read=n_read,
        silver_inserted=inserted,
        duplicates_dropped=dupes,
        quarantined=n_bad,
    )


def _already_ingested(spark: SparkSession, settings: Settings, fingerprint: str) -> bool:
    if not table_exists(spark, settings, BRONZE_ORDERS):
        return False
    bronze = read_table(spark, settings, BRONZE_ORDERS)
    return bool(bronze.where(F.col("file_fingerprint") == fingerprint).limit(1).count())


def _typed(bronze: DataFrame) -> DataFrame:
    """Parse raw strings; rows that break the contract get a ``reason``."""
    date = F.coalesce(
        F.try_to_timestamp(F.col("order_date"), F.lit("yyyyMMdd")),
        F.try_to_timestamp(F.col("order_date"), F.lit("yyyy-MM-dd")),
    ).cast("date")
    qty = F.col("quantity").try_cast("int")
    amount = F.col("amount").try_cast("double")
    reason = (
        F.when(F.col("order_id").isNull() | (F.trim("order_id") == ""), F.lit("missing order_id"))
        .when(
            F.col("customer_id").isNull() | (F.trim("customer_id") == ""),
            F.lit("missing customer_id"),
        )
        .when(date.isNull(), F.lit("unparseable order_date"))
        .when(qty.isNull(), F.lit("unparseable quantity"))
        .when(qty < 0, F.lit("negative quantity"))
        .when(amount.isNull(), F.lit("unparseable amount"))
        .when(amount < 0, F.lit("negative amount"))
    )
    return bronze.select(
        "*",
        date.alias("order_date_t"),
        qty.alias("quantity_t"),
        amount.alias("amount_t"),
        reason.alias("reason"),
    )


def _merge_silver(spark: SparkSession, settings: Settings, good: DataFrame) -> tuple[int, int]:
    """Insert orders whose id silver has not seen; return (inserted, duplicates dropped)."""
    from delta.tables import DeltaTable

    batch = good.select(
        "order_id",
        F.trim("customer_id").alias("customer_id"),
        F.col("order_date_t").alias("order_date"),
        F.col("quantity_t").alias("quantity"),
        F.col("amount_t").alias("amount"),
        "batch_id",
    ).cache()
    try:
        n_good = batch.count()
        unique = batch.dropDuplicates(["order_id"])
        silver = DeltaTable.forPath(spark, table_path(settings, SILVER_ORDERS))
        (
            silver.alias("s")
            .merge(unique.alias("b"), "s.order_id = b.order_id")
            .whenNotMatchedInsertAll()
            .execute()
        )
        last = silver.history(1).select("operationMetrics").first()
        metrics = last[0] if last else {}
        inserted = int((metrics or {}).get("numTargetRowsInserted", 0))
    finally:
        batch.unpersist()
    return inserted, n_good - inserted
