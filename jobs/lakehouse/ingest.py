"""Ingest landing files into bronze (raw + metadata) and silver (typed, deduplicated).

Row accounting holds for every batch: rows read = silver written + duplicates
dropped + quarantined. A file whose content (sha256) bronze has already seen
adds nothing, whatever its name. Sources: the bundled CDNOW file, or a landing
folder with ``orders/`` and ``customers/`` CSV or Parquet files (``schemas.sources``).
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

from jobs.lakehouse.landing import landing_files, read_landing, with_metadata
from jobs.lakehouse.merge import merge_silver
from jobs.lakehouse.rules import CUSTOMERS_LAYER, ORDERS_LAYER, SourceLayer
from jobs.platform import ensure_table, read_table, table_exists, table_path
from schemas.settings import Settings
from schemas.sources import ORDERS_SOURCE
from schemas.tables import BRONZE_ORDERS, TableSpec


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
    files: int = 1

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
    bronze = bronze.withColumn("batch_id", F.lit(batch_id)).select(*layer.bronze.columns)
    for spec in (layer.bronze, layer.quarantine, layer.silver):
        ensure_table(spark, settings, spec)
    typed = layer.typed(bronze)
    counts = typed.agg(F.count(F.lit(1)).alias("n"), F.count("reason").alias("bad")).first()
    n_read, n_bad = (int(counts["n"]), int(counts["bad"])) if counts else (0, 0)
    in_batch = ", ".join(f"'{fp}'" for fp in fingerprint.split(","))
    # Quarantine first, then silver, bronze last: the bronze fingerprint marks the files
    # as done, so a crash before it makes the re-run redo the whole batch (quarantine
    # replaces the files' rows, silver merges on its key: both stay exact).
    (
        typed.where(F.col("reason").isNotNull())
        .select(*layer.quarantine.columns)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"file_fingerprint IN ({in_batch})")
        .save(table_path(settings, layer.quarantine))
    )
    written = merge_silver(
        spark,
        settings,
        layer.silver,
        rows=layer.to_silver(typed),
        key=layer.source.key,
        update_changed=layer.update_changed,
    )
    bronze.write.format("delta").mode("append").save(table_path(settings, layer.bronze))
    return IngestResult(
        source_file=label,
        fingerprint=fingerprint,
        batch_id=batch_id,
        skipped=False,
        rows_read=n_read,
        silver_inserted=written,
        duplicates_dropped=n_read - n_bad - written,
        quarantined=n_bad,
        files=files,
    )


def _seen_fingerprints(
    spark: SparkSession, settings: Settings, bronze: TableSpec, fingerprints: list[str]
) -> set[str]:
    if not fingerprints or not table_exists(spark, settings, bronze):
        return set()
    rows = (
        read_table(spark, settings, bronze)
        .where(F.col("file_fingerprint").isin(fingerprints))
        .select("file_fingerprint")
        .distinct()
        .collect()
    )
    return {r[0] for r in rows}


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
