"""Reading landing files (CSV or Parquet) with a source's explicit schema, as raw strings.

Columns are matched by name, in any order: a CSV file's header decides which column is
which (Spark alone would read a CSV by position whatever its header says), and a file
whose header lacks a source column or has one it does not know is refused, naming both.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from schemas.sources import FILE_FORMATS, SourceSpec


def landing_files(landing: Path, source: SourceSpec) -> list[Path]:
    folder = landing / source.name
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lstrip(".") in FILE_FORMATS)


def read_landing(spark: SparkSession, source: SourceSpec, files: dict[Path, str]) -> DataFrame:
    """New landing files of one source as raw strings with their file name and fingerprint."""
    frames = []
    for fmt in FILE_FORMATS:
        paths = [str(p) for p in files if p.suffix == f".{fmt}"]
        if not paths:
            continue
        if fmt == "csv":
            frame = _read_csv(spark, source, [Path(p) for p in paths])
        else:
            frame = spark.read.parquet(*paths)
            missing = sorted(set(source.columns) - set(frame.columns))
            if missing:
                raise ValueError(f"{source.name} parquet files {paths} lack columns {missing}")
        frames.append(
            frame.select(
                *[F.col(c).cast("string").alias(c) for c in source.columns],
                F.lit(None).cast("bigint").alias("line_no"),
                F.col("_metadata.file_name").alias("_file"),
            )
        )
    raw = frames[0]
    for frame in frames[1:]:
        raw = raw.unionByName(frame)
    by_name = F.create_map(*[F.lit(x) for p, fp in files.items() for x in (p.name, fp)])
    return with_metadata(raw, file_name=F.col("_file"), fingerprint=by_name[F.col("_file")])


def csv_header(path: Path) -> tuple[str, ...]:
    """The column names of a CSV file's first line (empty for an empty file)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = next(csv.reader(handle), [])
    return tuple(name.strip() for name in first)


def _read_csv(spark: SparkSession, source: SourceSpec, paths: list[Path]) -> DataFrame:
    """CSV files grouped by header order, each group read with its own column order."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        header = csv_header(path) or source.columns  # an empty file: nothing to read
        if set(header) != set(source.columns) or len(header) != len(source.columns):
            missing = sorted(set(source.columns) - set(header))
            unknown = sorted({c for c in header if c not in source.columns or header.count(c) > 1})
            raise ValueError(
                f"{source.name} CSV file {path.name} has header {list(header)}: "
                f"missing columns {missing}, unexpected or repeated columns {unknown} "
                f"(expected {list(source.columns)}, in any order)"
            )
        groups.setdefault(header, []).append(str(path))
    frames = [
        spark.read.schema(", ".join(f"`{c}` STRING" for c in header))
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .csv(files)
        .select(*source.columns, "_metadata")
        for header, files in groups.items()
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def with_metadata(frame: DataFrame, *, file_name: Column, fingerprint: Column) -> DataFrame:
    return (
        frame.withColumn("source_file", file_name)
        .withColumn("file_fingerprint", fingerprint)
        .withColumn("ingested_at", F.current_timestamp())
    )
