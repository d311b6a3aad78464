"""Data contracts as plain data: which expectations each table must meet.

Each entry is a Great Expectations 1.x expectation class name and its keyword
arguments; ``jobs.lakehouse.contracts`` turns them into suites and runs them. Every
contract also checks the table's columns (``columns``) and, when a previous
partition exists, that the row count moved by at most ``max_row_count_change``
(a fraction; the settings value overrides the default here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.features import ALL_FEATURES, FEATURES
from schemas.sources import CHANNELS, COUNTRIES, DEVICES


@dataclass(frozen=True, kw_only=True)
class Expectation:
    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Contract:
    name: str
    table: str
    expectations: tuple[Expectation, ...]
    columns: tuple[str, ...] = ()  # exact column set; empty: not checked
    max_row_count_change: float | None = None  # None: no row-count check


def not_null(column: str) -> Expectation:
    return Expectation(type="ExpectColumnValuesToNotBeNull", kwargs={"column": column})


def unique(column: str) -> Expectation:
    return Expectation(type="ExpectColumnValuesToBeUnique", kwargs={"column": column})


def between(
    column: str, *, min_value: float | None = None, max_value: float | None = None
) -> Expectation:
    kwargs: dict[str, Any] = {"column": column}
    if min_value is not None:
        kwargs["min_value"] = min_value
    if max_value is not None:
        kwargs["max_value"] = max_value
    return Expectation(type="ExpectColumnValuesToBeBetween", kwargs=kwargs)


def in_set(column: str, values: tuple[str, ...]) -> Expectation:
    return Expectation(
        type="ExpectColumnValuesToBeInSet", kwargs={"column": column, "value_set": list(values)}
    )


_BRONZE_META = ("line_no", "source_file", "file_fingerprint", "ingested_at", "batch_id")

BRONZE_ORDERS = Contract(
    name="bronze_orders",
    table="bronze.orders",
    columns=("order_id", "customer_id", "order_date", "quantity", "amount", *_BRONZE_META),
    expectations=(not_null("source_file"), not_null("file_fingerprint"), not_null("batch_id")),
)

SILVER_ORDERS = Contract(
    name="silver_orders",
    table="silver.orders",
    columns=("order_id", "customer_id", "order_date", "quantity", "amount", "batch_id"),
    expectations=(
        not_null("order_id"),
        unique("order_id"),
        not_null("customer_id"),
        not_null("order_date"),
        between("quantity", min_value=0),
        between("amount", min_value=0),
    ),
)

SILVER_CUSTOMERS = Contract(
    name="silver_customers",
    table="silver.customers",
    columns=("customer_id", "signup_date", "country", "channel", "device", "batch_id"),
    expectations=(
        not_null("customer_id"),
        unique("customer_id"),
        not_null("signup_date"),
        in_set("country", COUNTRIES),
        in_set("channel", CHANNELS),
        in_set("device", DEVICES),
    ),
)

GOLD_CUSTOMER_FEATURES = Contract(
    name="gold_customer_features",
    table="gold.customer_features",
    columns=("customer_id", "as_of_date", *(f.name for f in ALL_FEATURES)),
    max_row_count_change=0.5,
    expectations=(
        not_null("customer_id"),
        unique("customer_id"),
        between("recency_days", min_value=1),
        between("frequency_all", min_value=1),
        between("monetary_all", min_value=0),
        in_set("channel", CHANNELS),
        *(not_null(f.name) for f in FEATURES if not f.nullable),
    ),
)

# The minimal gold suite run on GX's own Spark engine by the validation benchmark.
GOLD_CUSTOMER_FEATURES_CORE = Contract(
    name="gold_customer_features_core",
    table="gold.customer_features",
    expectations=GOLD_CUSTOMER_FEATURES.expectations[:4],
)
