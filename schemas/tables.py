"""Names and schemas of every Delta table lakescore writes (the contracts between jobs)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.features import FEATURES


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    name: str  # schema.table, as registered in the Spark SQL catalog
    ddl: str  # Spark DDL of the columns
    partition_by: tuple[str, ...] = ()
    description: str = ""

    @property
    def columns(self) -> list[str]:
        return [part.strip().split(" ", 1)[0] for part in self.ddl.split(",")]


BRONZE_ORDERS = TableSpec(
    name="bronze.orders",
    ddl=(
        "order_id STRING, customer_id STRING, order_date STRING, quantity STRING, amount STRING, "
        "line_no BIGINT, source_file STRING, file_fingerprint STRING, "
        "ingested_at TIMESTAMP, batch_id STRING"
    ),
    description="Every raw order row as it arrived, with ingest metadata.",
)

SILVER_ORDERS = TableSpec(
    name="silver.orders",
    ddl=(
        "order_id STRING, customer_id STRING, order_date DATE, quantity INT, "
        "amount DOUBLE, batch_id STRING"
    ),
    description="Typed orders, one row per order id.",
)

QUARANTINE_ORDERS = TableSpec(
    name="bronze.orders_quarantine",
    ddl=(
        "order_id STRING, customer_id STRING, order_date STRING, quantity STRING, amount STRING, "
        "line_no BIGINT, source_file STRING, file_fingerprint STRING, batch_id STRING, "
        "reason STRING"
    ),
    description="Rows that broke the orders contract, with the reason; never in silver.",
)

CUSTOMER_FEATURES = TableSpec(
    name="gold.customer_features",
    ddl=", ".join(
        ["customer_id STRING", "as_of_date DATE"] + [f"{f.name} {f.dtype}" for f in FEATURES]
    ),
    partition_by=("as_of_date",),
    description="Point-in-time customer features: only orders strictly before as_of_date.",
)

PREDICTIONS_HISTORY = TableSpec(
    name="predictions.history",
    ddl=(
        "customer_id STRING, model_name STRING, model_version STRING, model_role STRING, "
        "score DOUBLE, score_date DATE, scored_at TIMESTAMP, run_id STRING, "
        "feature_table_version BIGINT"
    ),
    partition_by=("score_date",),
    description="Append-only history: every score ever served or shadowed.",
)

PREDICTIONS_CURRENT = TableSpec(
    name="predictions.current",
    ddl=(
        "customer_id STRING, model_name STRING, model_version STRING, score DOUBLE, "
        "score_date DATE, scored_at TIMESTAMP, run_id STRING, feature_table_version BIGINT"
    ),
    description="Latest champion score per customer and model; change data feed on.",
)

ALL_TABLES = (
    BRONZE_ORDERS,
    QUARANTINE_ORDERS,
    SILVER_ORDERS,
    CUSTOMER_FEATURES,
    PREDICTIONS_HISTORY,
    PREDICTIONS_CURRENT,
)
