"""The feature catalogue and the contracts agree with the table specs (no Spark needed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from schemas import contracts
from schemas.features import (
    ALL_FEATURES,
    FEATURE_NAMES,
    FEATURES,
    PROFILE_FEATURE_NAMES,
    feature_docs_markdown,
)
from schemas.sources import CUSTOMERS_SOURCE, ORDERS_SOURCE
from schemas.tables import (
    BRONZE_CUSTOMERS,
    BRONZE_ORDERS,
    CUSTOMER_FEATURES,
    SILVER_CUSTOMERS,
    SILVER_ORDERS,
)

pytestmark = pytest.mark.unit


def test_behaviour_features_are_numeric_and_profile_features_separate() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert {f.dtype for f in FEATURES} <= {"INT", "DOUBLE"}
    assert set(PROFILE_FEATURE_NAMES) == {"country", "channel", "device", "signup_tenure_days"}
    assert not set(FEATURE_NAMES) & set(PROFILE_FEATURE_NAMES)
    assert {"recency_days", "frequency_365d", "tenure_days"} <= set(FEATURE_NAMES)


def test_gold_table_and_docs_are_generated_from_the_catalogue() -> None:
    assert CUSTOMER_FEATURES.columns == [
        "customer_id",
        "as_of_date",
        *(f.name for f in ALL_FEATURES),
    ]
    docs = feature_docs_markdown()
    for feature in ALL_FEATURES:
        assert f"| `{feature.name}` | {feature.dtype} |" in docs
        assert feature.description


@pytest.mark.parametrize(
    ("contract", "columns"),
    [
        (contracts.BRONZE_ORDERS, BRONZE_ORDERS.columns),
        (contracts.SILVER_ORDERS, SILVER_ORDERS.columns),
        (contracts.SILVER_CUSTOMERS, SILVER_CUSTOMERS.columns),
        (contracts.GOLD_CUSTOMER_FEATURES, CUSTOMER_FEATURES.columns),
    ],
)
def test_contracts_name_only_columns_their_table_has(
    contract: contracts.Contract, columns: list[str]
) -> None:
    assert set(contract.columns) == set(columns)
    referenced = {e.kwargs["column"] for e in contract.expectations if "column" in e.kwargs}
    assert referenced <= set(columns)


def test_gold_contract_checks_every_non_nullable_feature() -> None:
    not_null = {
        e.kwargs["column"]
        for e in contracts.GOLD_CUSTOMER_FEATURES.expectations
        if e.type == "ExpectColumnValuesToNotBeNull"
    }
    assert not_null == {"customer_id"} | {f.name for f in FEATURES if not f.nullable}


def test_source_schemas_match_bronze_raw_columns() -> None:
    assert list(ORDERS_SOURCE.columns) == BRONZE_ORDERS.columns[: len(ORDERS_SOURCE.columns)]
    assert (
        list(CUSTOMERS_SOURCE.columns) == BRONZE_CUSTOMERS.columns[: len(CUSTOMERS_SOURCE.columns)]
    )
    assert ORDERS_SOURCE.raw_ddl.startswith("order_id STRING, customer_id STRING")


def test_generator_intensity_has_season_and_campaigns() -> None:
    from jobs.lakehouse.synthetic import CAMPAIGN_EVERY_DAYS, CAMPAIGN_LENGTH_DAYS, daily_intensity

    start = dt.date(2023, 1, 1)
    intensity = daily_intensity(days=365, start=start)
    campaign = (np.arange(365) % CAMPAIGN_EVERY_DAYS) == 0
    starts = np.flatnonzero(campaign)[:-1]
    assert (intensity[starts] / intensity[starts + CAMPAIGN_LENGTH_DAYS] > 2).all()
    quiet = np.where(campaign, np.nan, intensity)
    nov, may = np.nanmean(quiet[304:334]), np.nanmean(quiet[120:151])
    assert nov > 1.3 * may
