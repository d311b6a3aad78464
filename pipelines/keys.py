"""Every asset key of the pipeline: a table's key is its spec's name (``schema.table``)."""

from dagster import AssetKey

from schemas.tables import (
    BACKTESTS,
    BRONZE_ORDERS,
    CUSTOMER_FEATURES,
    ONLINE_EVAL,
    PREDICTIONS_CURRENT,
    PREDICTIONS_HISTORY,
    SILVER_CUSTOMERS,
    SILVER_ORDERS,
    TableSpec,
)


def table_key(spec: TableSpec) -> AssetKey:
    """``bronze.orders`` -> ``AssetKey(["bronze", "orders"])``."""
    return AssetKey(spec.name.split("."))


BRONZE_ORDERS_KEY = table_key(BRONZE_ORDERS)
SILVER_ORDERS_KEY = table_key(SILVER_ORDERS)
SILVER_CUSTOMERS_KEY = table_key(SILVER_CUSTOMERS)
CUSTOMER_FEATURES_KEY = table_key(CUSTOMER_FEATURES)
HISTORY_KEY = table_key(PREDICTIONS_HISTORY)
CURRENT_KEY = table_key(PREDICTIONS_CURRENT)
BACKTESTS_KEY = table_key(BACKTESTS)
ONLINE_EVAL_KEY = table_key(ONLINE_EVAL)
# Assets that are not Delta tables: the registered models, the serving store, the report.
CHAMPION_MODEL_KEY = AssetKey(["models", "champion"])
COLDSTART_MODEL_KEY = AssetKey(["models", "coldstart"])
MONGO_PREDICTIONS_KEY = AssetKey(["serving", "mongo_predictions"])
NIGHT_REPORT_KEY = AssetKey(["reports", "nightly"])
