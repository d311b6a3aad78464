"""The synthetic generator: deterministic per seed, and its latent process shows in the data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from jobs.lakehouse.synthetic import CAMPAIGN_EVERY_DAYS, CAMPAIGN_LENGTH_DAYS, generate
from schemas.sources import CHANNELS, COUNTRIES, CUSTOMERS_SOURCE, DEVICES, ORDERS_SOURCE

pytestmark = pytest.mark.integration

START = dt.date(2023, 1, 1)
DAYS = 730


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(customers=20_000, days=DAYS, seed=11, out=out, start=START, chunk_customers=5_000)
    return out


def _read(landing: Path, name: str) -> pd.DataFrame:
    return pq.read_table(landing / name).to_pandas()


def test_files_follow_the_source_schemas_and_categories(landing: Path) -> None:
    customers, orders = _read(landing, "customers"), _read(landing, "orders")
    assert tuple(customers.columns) == CUSTOMERS_SOURCE.columns
    assert tuple(orders.columns) == ORDERS_SOURCE.columns
    assert len(list((landing / "orders").glob("*.parquet"))) == 4  # one file per chunk
    assert customers["customer_id"].is_unique and orders["order_id"].is_unique
    assert set(orders["customer_id"]) <= set(customers["customer_id"])
    assert set(customers["country"]) <= set(COUNTRIES)
    assert set(customers["channel"]) == set(CHANNELS)
    assert set(customers["device"]) == set(DEVICES)
    dates = pd.to_datetime(orders["order_date"])
    assert dates.min() >= pd.Timestamp(START)
    assert dates.max() < pd.Timestamp(START + dt.timedelta(days=DAYS))
    assert (orders["quantity"] >= 1).all() and (orders["amount"] > 0).all()


def test_same_seed_same_bytes_other_seed_other_data(landing: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    generate(customers=20_000, days=DAYS, seed=11, out=again, start=START, chunk_customers=5_000)
    generate(customers=20_000, days=DAYS, seed=12, out=other, start=START, chunk_customers=5_000)
    part = Path("orders") / "part-00002.parquet"
    assert (landing / part).read_bytes() == (again / part).read_bytes()
    assert not pq.read_table(landing / part).equals(pq.read_table(other / part))


def test_purchase_process_has_heterogeneity_seasonality_campaigns_and_signal(
    landing: Path,
) -> None:
    customers, orders = _read(landing, "customers"), _read(landing, "orders")
    per_customer = (
        orders.groupby("customer_id").size().reindex(customers["customer_id"], fill_value=0)
    )
    # Heterogeneous rates: far more spread than a common Poisson rate would give.
    assert per_customer.var() > 5 * per_customer.mean()
    assert 0.1 < (per_customer == 0).mean() < 0.6  # some never buy
    day = (pd.to_datetime(orders["order_date"]) - pd.Timestamp(START)).dt.days
    daily = day.value_counts().reindex(range(DAYS), fill_value=0)
    campaign = (np.arange(DAYS) % CAMPAIGN_EVERY_DAYS) < CAMPAIGN_LENGTH_DAYS
    # Campaign days against the 10 days either side (the same season).
    lift = [
        daily[d]
        / daily[[x for x in range(d - 10, d + 10) if 0 <= x < DAYS and not campaign[x]]].mean()
        for d in np.flatnonzero(campaign)[3:-3]
    ]
    assert np.median(lift) > 1.8
    month = pd.to_datetime(orders["order_date"]).dt.month
    year2 = pd.to_datetime(orders["order_date"]).dt.year == 2024
    assert (month[year2] == 11).sum() > 1.3 * (month[year2] == 5).sum()  # season peaks in November
    by_channel = per_customer.groupby(customers.set_index("customer_id")["channel"]).mean()
    assert by_channel["email"] > 1.5 * by_channel["social"]  # channel shifts rate and lifetime
    # Signal: ordering in the last 60 days before D predicts ordering in the 30 days after D.
    d0 = pd.Timestamp(START + dt.timedelta(days=500))
    dates = pd.to_datetime(orders["order_date"])
    recent = set(orders.loc[(dates < d0) & (dates >= d0 - pd.Timedelta(days=60)), "customer_id"])
    past = set(orders.loc[dates < d0, "customer_id"])
    future = set(orders.loc[(dates >= d0) & (dates < d0 + pd.Timedelta(days=30)), "customer_id"])
    rate_recent = len(recent & future) / len(recent)
    rate_lapsed = len((past - recent) & future) / len(past - recent)
    assert rate_recent > 3 * rate_lapsed


def test_csv_output_and_bad_arguments(tmp_path: Path) -> None:
    result = generate(customers=50, days=30, seed=1, out=tmp_path, file_format="csv")
    text = (tmp_path / "orders" / "part-00000.csv").read_text().splitlines()
    assert text[0].replace('"', "") == ",".join(ORDERS_SOURCE.columns)
    assert len(text) - 1 == result.orders
    with pytest.raises(ValueError, match="file_format"):
        generate(customers=5, days=5, seed=1, out=tmp_path, file_format="json")
