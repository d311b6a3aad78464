"""Contract metrics in one Spark pass: per expectation, how many rows break it.

The row-level expectations of a contract (not null, unique, between, in set)
become unexpected-row counts computed by a single aggregation; the column set
is checked from the schema without touching data. ``jobs.lakehouse.contracts`` then
validates this one-row summary with Great Expectations.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from schemas.contracts import Contract, Expectation

SUPPORTED = (
    "ExpectColumnValuesToNotBeNull",
    "ExpectColumnValuesToBeUnique",
    "ExpectColumnValuesToBeBetween",
    "ExpectColumnValuesToBeInSet",
)


@dataclass(frozen=True, kw_only=True)
class Metric:
    key: str  # column of the summary frame
    expectation: str
    column: str | None
    unexpected_count: int
    element_count: int


def metric_key(index: int, exp: Expectation) -> str:
    column = exp.kwargs.get("column", "table")
    return f"e{index:02d}__{column}__{exp.type.removeprefix('ExpectColumnValuesTo')}"


def _unexpected(exp: Expectation) -> tuple[Column, Column]:
    """(unexpected rows, rows considered) for one row-level expectation (GX semantics: nulls
    count only for not-null; for uniqueness, the extra copies of repeated values)."""
    col = F.col(exp.kwargs["column"])
    if exp.type == "ExpectColumnValuesToNotBeNull":
        return F.count(F.when(col.isNull(), 1)), F.count(F.lit(1))
    if exp.type == "ExpectColumnValuesToBeUnique":
        return F.count(col) - F.count_distinct(col), F.count(col)
    if exp.type == "ExpectColumnValuesToBeBetween":
        low, high = exp.kwargs.get("min_value"), exp.kwargs.get("max_value")
        bad = F.lit(False)
        if low is not None:
            bad = bad | (col < F.lit(low))
        if high is not None:
            bad = bad | (col > F.lit(high))
        return F.count(F.when(bad, 1)), F.count(col)
    if exp.type == "ExpectColumnValuesToBeInSet":
        return F.count(F.when(~col.isin(list(exp.kwargs["value_set"])), 1)), F.count(col)
    raise ValueError(f"no one-pass metric for {exp.type}; supported: {', '.join(SUPPORTED)}")


def contract_metrics(df: DataFrame, *, contract: Contract) -> tuple[int, list[Metric]]:
    """(row count, one metric per expectation) from a single aggregation over ``df``.

    Expectations on columns ``df`` lacks are reported as failing on every row (the
    column-set check names the missing column too).
    """
    present = set(df.columns)
    aggs: list[Column] = [F.count(F.lit(1)).alias("rows")]
    keys = []
    for i, exp in enumerate(contract.expectations):
        key = metric_key(i, exp)
        keys.append(key)
        if exp.kwargs.get("column") in present:
            bad, considered = _unexpected(exp)
            aggs += [bad.alias(f"{key}__bad"), considered.alias(f"{key}__n")]
    row = df.agg(*aggs).first()
    values = row.asDict() if row else {}
    rows = int(values.get("rows") or 0)
    metrics = []
    for key, exp in zip(keys, contract.expectations, strict=True):
        bad_value = values.get(f"{key}__bad", rows)
        considered_value = values.get(f"{key}__n", rows)
        metrics.append(
            Metric(
                key=key,
                expectation=exp.type,
                column=exp.kwargs.get("column"),
                unexpected_count=int(bad_value or 0),
                element_count=int(considered_value or 0),
            )
        )
    return rows, metrics


def column_set_mismatch(df: DataFrame, *, contract: Contract) -> tuple[list[str], list[str]]:
    """(missing, unexpected) columns against the contract's exact column set."""
    if not contract.columns:
        return [], []
    expected, actual = set(contract.columns), set(df.columns)
    return sorted(expected - actual), sorted(actual - expected)
