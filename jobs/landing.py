"""Reading landing files (CSV or Parquet) with a source's explicit schema, as raw strings."""

from __future__ import annotations

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
            reader = spark.read.schema(source.raw_ddl).option("header", "true")
            frame = reader.option("mode", "PERMISSIVE").csv(paths)
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


def with_metadata(frame: DataFrame, *, file_name: Column, fingerprint: Column) -> DataFrame:
    return (
        frame.withColumn("source_file", file_name)
        .withColumn("file_fingerprint", fingerprint)
        .withColumn("ingested_at", F.current_timestamp())
    )
