"""Pure typing rules from raw bronze strings to silver types; a broken row gets a ``reason``.

The first rule a row breaks names the reason; rows with a reason go to
quarantine, never to silver. A row that passes every rule can still be quarantined
by ingest as a conflicting re-send (``conflicting_resend``): an order id sent again
with other values than silver holds, or twice with different values in one batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from schemas.sources import (
    CHANNELS,
    COUNTRIES,
    CUSTOMERS_SOURCE,
    DEVICES,
    ORDERS_SOURCE,
    SourceSpec,
)
from schemas.tables import (
    BRONZE_CUSTOMERS,
    BRONZE_ORDERS,
    QUARANTINE_CUSTOMERS,
    QUARANTINE_ORDERS,
    SILVER_CUSTOMERS,
    SILVER_ORDERS,
    TableSpec,
)


def parse_date(column: str) -> Column:
    """ISO ``yyyy-MM-dd`` or compact ``yyyyMMdd`` (CDNOW); null when neither parses."""
    return F.coalesce(
        F.try_to_timestamp(F.col(column), F.lit("yyyy-MM-dd")),
        F.try_to_timestamp(F.col(column), F.lit("yyyyMMdd")),
    ).cast("date")


def _missing(column: str) -> Column:
    return F.col(column).isNull() | (F.trim(F.col(column)) == "")


def typed_orders(bronze: DataFrame) -> DataFrame:
    """Bronze orders plus ``order_date_t``, ``quantity_t``, ``amount_t`` and ``reason``."""
    date = parse_date("order_date")
    qty = F.trim("quantity").try_cast("int")
    amount = F.trim("amount").try_cast("double")
    reason = (
        F.when(_missing("order_id"), F.lit("missing order_id"))
        .when(_missing("customer_id"), F.lit("missing customer_id"))
        .when(date.isNull(), F.lit("unparseable order_date"))
        .when(qty.isNull(), F.lit("unparseable quantity"))
        .when(qty < 0, F.lit("negative quantity"))
        .when(amount.isNull() | F.isnan(amount), F.lit("unparseable amount"))
        .when(amount < 0, F.lit("negative amount"))
    )
    return bronze.select(
        "*",
        date.alias("order_date_t"),
        qty.alias("quantity_t"),
        amount.alias("amount_t"),
        reason.alias("reason"),
    )


def silver_order_columns() -> list[Column]:
    """The silver orders columns as expressions over typed bronze orders."""
    return [
        F.trim("order_id").alias("order_id"),
        F.trim("customer_id").alias("customer_id"),
        F.col("order_date_t").alias("order_date"),
        F.col("quantity_t").alias("quantity"),
        F.col("amount_t").alias("amount"),
        F.col("batch_id"),
    ]


def silver_orders(typed: DataFrame) -> DataFrame:
    """Good typed orders in the silver layout (before deduplication)."""
    return typed.where(F.col("reason").isNull()).select(*silver_order_columns())


def _category(column: str) -> Column:
    return F.lower(F.trim(F.col(column)))


def typed_customers(bronze: DataFrame) -> DataFrame:
    """Bronze customers plus ``signup_date_t`` and ``reason`` (unknown categories are broken)."""
    date = parse_date("signup_date")
    country = F.upper(F.trim(F.col("country")))
    reason = (
        F.when(_missing("customer_id"), F.lit("missing customer_id"))
        .when(date.isNull(), F.lit("unparseable signup_date"))
        .when(_missing("country"), F.lit("missing country"))
        .when(_missing("channel"), F.lit("missing channel"))
        .when(_missing("device"), F.lit("missing device"))
        .when(~country.isin(*COUNTRIES), F.concat(F.lit("unknown country "), "country"))
        .when(~_category("channel").isin(*CHANNELS), F.concat(F.lit("unknown channel "), "channel"))
        .when(~_category("device").isin(*DEVICES), F.concat(F.lit("unknown device "), "device"))
    )
    return bronze.select("*", date.alias("signup_date_t"), reason.alias("reason"))


def silver_customer_columns() -> list[Column]:
    """The silver customers columns as expressions over typed bronze customers."""
    return [
        F.trim("customer_id").alias("customer_id"),
        F.col("signup_date_t").alias("signup_date"),
        F.upper(F.trim(F.col("country"))).alias("country"),
        _category("channel").alias("channel"),
        _category("device").alias("device"),
        F.col("batch_id"),
    ]


def silver_customers(typed: DataFrame) -> DataFrame:
    """Good typed customers in the silver layout (before deduplication)."""
    return typed.where(F.col("reason").isNull()).select(*silver_customer_columns())


CONFLICTING_RESEND = "conflicting_resend"


def conflicting_resend(key: str, value: Column, *, same_batch: Column) -> Column:
    """The quarantine reason of a key re-sent with other values (sources whose rows are
    immutable once seen): ``conflicting_resend: order_id o1 already in silver with other
    values``, or ``... sent with different values in the same batch``."""
    return F.concat(
        F.lit(f"{CONFLICTING_RESEND}: {key} "),
        value,
        F.when(same_batch, F.lit(" sent with different values in the same batch")).otherwise(
            F.lit(" already in silver with other values")
        ),
    )


@dataclass(frozen=True, kw_only=True)
class SourceLayer:
    """One source's path through the lake: its tables and typing rules.

    ``update_changed``: a key silver already holds takes the batch's values when they
    differ (customer profiles); without it, rows are immutable once in silver (orders),
    and a key re-sent with other values is a conflict, quarantined.
    """

    source: SourceSpec
    bronze: TableSpec
    quarantine: TableSpec
    silver: TableSpec
    typed: Callable[[DataFrame], DataFrame]
    silver_columns: Callable[[], list[Column]]
    update_changed: bool

    def to_silver(self, typed: DataFrame) -> DataFrame:
        """Good typed rows in the silver layout (before deduplication)."""
        return typed.where(F.col("reason").isNull()).select(*self.silver_columns())


ORDERS_LAYER = SourceLayer(
    source=ORDERS_SOURCE,
    bronze=BRONZE_ORDERS,
    quarantine=QUARANTINE_ORDERS,
    silver=SILVER_ORDERS,
    typed=typed_orders,
    silver_columns=silver_order_columns,
    update_changed=False,
)
CUSTOMERS_LAYER = SourceLayer(
    source=CUSTOMERS_SOURCE,
    bronze=BRONZE_CUSTOMERS,
    quarantine=QUARANTINE_CUSTOMERS,
    silver=SILVER_CUSTOMERS,
    typed=typed_customers,
    silver_columns=silver_customer_columns,
    update_changed=True,
)
