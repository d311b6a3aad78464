"""A score histogram for the Dagster UI: equal-width bins between the lowest and highest score."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True, kw_only=True)
class Bin:
    low: float
    high: float
    count: int


def score_histogram(frame: DataFrame, *, column: str = "score", bins: int = 10) -> list[Bin]:
    """``bins`` equal-width bins over [min, max] of ``column`` (two passes: range, counts)."""
    low, high = frame.agg(F.min(column), F.max(column)).first() or (None, None)
    if low is None or high is None:
        return []
    low, high = float(low), float(high)
    width = (high - low) / bins if high > low else 1.0
    index = F.least(F.floor((F.col(column) - F.lit(low)) / F.lit(width)), F.lit(bins - 1))
    counts = {
        int(r[0]): int(r[1])
        for r in frame.select(index.cast("int").alias("b")).groupBy("b").count().collect()
    }
    return [
        Bin(low=low + i * width, high=low + (i + 1) * width, count=counts.get(i, 0))
        for i in range(bins if high > low else 1)
    ]


def histogram_markdown(bins: list[Bin], *, width: int = 30) -> str:
    """A Markdown table with a text bar per bin (Dagster renders Markdown metadata)."""
    if not bins:
        return "no scores"
    top = max(b.count for b in bins) or 1
    lines = ["| score | customers | |", "|---|---:|---|"]
    for b in bins:
        bar = "█" * max(1 if b.count else 0, round(width * b.count / top))
        lines.append(f"| {b.low:.4g} to {b.high:.4g} | {b.count:,} | {bar} |")
    return "\n".join(lines)
