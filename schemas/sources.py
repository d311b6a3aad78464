"""Explicit schemas of the landing files (CSV or Parquet), one per source.

Landing files are read with exactly these columns, as strings (bronze keeps
raw values; typing happens on the way to silver, where rows that break the
contract are quarantined with a reason). A landing folder looks like::

    <landing>/orders/*.csv|*.parquet      order_id, customer_id, order_date, quantity, amount
    <landing>/customers/*.csv|*.parquet   customer_id, signup_date, country, channel, device

Dates are ISO ``yyyy-MM-dd`` (``yyyyMMdd`` is accepted too, as in CDNOW).
"""

from __future__ import annotations

from dataclasses import dataclass

FILE_FORMATS = ("csv", "parquet")


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    name: str  # sub-folder of the landing folder
    columns: tuple[str, ...]  # raw columns, in file order
    key: str  # silver deduplicates on this column
    description: str = ""

    @property
    def raw_ddl(self) -> str:
        """Spark DDL reading every column as a string (the explicit read schema)."""
        return ", ".join(f"{c} STRING" for c in self.columns)


ORDERS_SOURCE = SourceSpec(
    name="orders",
    columns=("order_id", "customer_id", "order_date", "quantity", "amount"),
    key="order_id",
    description="One row per order: who, when, how many items, how much.",
)

CUSTOMERS_SOURCE = SourceSpec(
    name="customers",
    columns=("customer_id", "signup_date", "country", "channel", "device"),
    key="customer_id",
    description="One row per customer profile; a later file's row replaces an earlier one.",
)

# Allowed categories (the customers contract checks them; the generator draws from them).
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "PL", "SE", "CA")
CHANNELS = ("organic", "paid_search", "social", "email", "referral")
DEVICES = ("desktop", "mobile", "tablet")

SOURCES = (ORDERS_SOURCE, CUSTOMERS_SOURCE)
