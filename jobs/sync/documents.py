"""Serving documents built column-wise from Arrow rows of ``predictions.current``.

The rows come from Spark as one Arrow table with the columns of ``SYNC_COLUMNS``
(``score_date`` already an ISO string). Sorting by customer groups each customer's
models together, so one pass builds one document per customer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SYNC_COLUMNS = (
    "customer_id",
    "model_name",
    "model_version",
    "score",
    "score_date",
    "scored_at",
    "reasons",
    "challenger_version",
    "shadow_scores",
)
SHADOW_TYPES = {
    "challenger_version": pa.string(),
    "shadow_scores": pa.map_(pa.string(), pa.float64()),
}


def sync_rows(frame: DataFrame) -> DataFrame:
    """The columns a document needs, typed the way the document stores them."""
    return frame.select(
        "customer_id",
        "model_name",
        F.col("model_version").cast("string").alias("model_version"),
        F.col("score").cast("double").alias("score"),
        F.date_format("score_date", "yyyy-MM-dd").alias("score_date"),
        "scored_at",
        # A version written before the table had reasons reads without them.
        F.col("reasons") if "reasons" in frame.columns else F.lit(None).alias("reasons"),
        # ... and without the scores of the model's other versions.
        *(
            F.col(name) if name in frame.columns else F.lit(None).cast(ddl).alias(name)
            for name, ddl in (
                ("challenger_version", "string"),
                ("shadow_scores", "map<string,double>"),
            )
        ),
    )


def sort_rows(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.sort_by([("customer_id", "ascending"), ("model_name", "ascending")])


def to_arrow(frame: DataFrame) -> pa.Table:
    """Collect a (small enough) Spark frame as one Arrow table, sorted by customer and model."""
    return sort_rows(frame.toArrow())


def _values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of a column; few distinct values are shared objects, not one per row."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("ms"), safe=False)  # drops the UTC zone and the µs
    distinct = pc.unique(column)
    if len(distinct) * 8 > len(column):
        return column.to_pylist()  # type: ignore[no-any-return]
    shared = distinct.to_pylist()
    return [shared[i] for i in pc.index_in(column, value_set=distinct).to_pylist()]


def iter_documents(
    table: pa.Table,
    *,
    delta_version: int,
    synced_at: dt.datetime,
    batch_rows: int = 20_000,
) -> Iterator[dict[str, Any]]:
    """One document per customer (``table`` sorted by customer id), built slice by slice."""
    doc: dict[str, Any] | None = None
    for start in range(0, table.num_rows, batch_rows):
        part = table.slice(start, batch_rows)
        ids = part.column("customer_id").to_pylist()
        names = _values(part.column("model_name"))
        entries = [
            {"score": s, "model_version": v, "score_date": d, "scored_at": t}
            for s, v, d, t in zip(
                part.column("score").to_pylist(),
                _values(part.column("model_version")),
                _values(part.column("score_date")),
                _values(part.column("scored_at")),
                strict=True,
            )
        ]
        for entry, why in zip(entries, reasons_of(part), strict=True):
            if why is not None:  # no key at all for a row scored without reasons
                entry["reasons"] = why
        add_shadow(entries, part)
        if len(set(ids)) == len(ids) and (doc is None or doc["_id"] != ids[0]):
            # One model per customer in this slice: no grouping needed.
            if doc is not None:
                yield doc
                doc = None
            last = len(ids) - 1
            for i, (customer, name, entry) in enumerate(zip(ids, names, entries, strict=True)):
                new = {
                    "_id": customer,
                    "models": {name: entry},
                    "delta_version": delta_version,
                    "synced_at": synced_at,
                }
                if i == last:
                    doc = new  # the next slice may hold more models of this customer
                else:
                    yield new
            continue
        for customer, name, entry in zip(ids, names, entries, strict=True):
            if doc is not None and doc["_id"] == customer:
                doc["models"][name] = entry
                continue
            if doc is not None:
                yield doc
            doc = {
                "_id": customer,
                "models": {name: entry},
                "delta_version": delta_version,
                "synced_at": synced_at,
            }
    if doc is not None:
        yield doc


def reasons_of(table: pa.Table) -> list[list[dict[str, Any]] | None]:
    """Each row's reasons as the document stores them (a list of ``feature, contribution,
    value`` objects, largest first), None for a row without (or a table without the column)."""
    if "reasons" not in table.column_names:
        return [None] * table.num_rows
    return table.column("reasons").to_pylist()  # type: ignore[no-any-return]


def shadow_of(table: pa.Table) -> list[tuple[str | None, dict[str, float] | None]]:
    """Each row's ``(challenger_version, shadow_scores)`` as the document stores them (the
    scores a dict of version -> score), Nones for a row without (or a table without them)."""
    n = table.num_rows
    if "shadow_scores" not in table.column_names:
        return [(None, None)] * n
    versions = table.column("challenger_version").to_pylist()
    scores = [None if s is None else dict(s) for s in table.column("shadow_scores").to_pylist()]
    return list(zip(versions, scores, strict=True))


def add_shadow(entries: list[dict[str, Any]], table: pa.Table) -> None:
    """Put each row's other versions' scores into its model entry (no keys when it has none:
    a night without a challenger costs nothing here)."""
    if "shadow_scores" not in table.column_names or table.column("shadow_scores").null_count == (
        table.num_rows
    ):
        return
    for entry, (version, scores) in zip(entries, shadow_of(table), strict=True):
        if version is not None:
            entry["challenger_version"] = version
        if scores:
            entry["shadow_scores"] = scores


def batched(docs: Iterator[dict[str, Any]], *, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def expected_models(table: pa.Table, ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Delta's values for ``ids``, per customer and model, for field-by-field verification."""
    if not ids:
        return {}
    rows = table.filter(pc.is_in(table.column("customer_id"), value_set=pa.array(ids, pa.string())))
    out: dict[str, dict[str, dict[str, Any]]] = {customer: {} for customer in ids}
    scored = rows.column("scored_at")
    if pa.types.is_timestamp(scored.type):
        scored = pc.cast(scored, pa.timestamp("ms"), safe=False)
    scored_list = scored.to_pylist()
    reasons = reasons_of(rows)
    shadow = shadow_of(rows)
    plain = rows.select(["customer_id", "model_name", "score", "model_version", "score_date"])
    for i, row in enumerate(plain.to_pylist()):
        version, scores = shadow[i]
        out[row["customer_id"]][row["model_name"]] = {
            "score": row["score"],
            "model_version": row["model_version"],
            "score_date": row["score_date"],
            "scored_at": scored_list[i],
            "reasons": reasons[i],
            "challenger_version": version,
            "shadow_scores": scores or None,
        }
    return out
