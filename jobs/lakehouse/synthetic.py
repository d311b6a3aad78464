"""Synthetic landing data at any scale: customer profiles and orders from a latent purchase process.

``python -m jobs.lakehouse.synthetic --customers N --days D --seed S --out DIR [--format csv|parquet]``

Each customer has a latent purchase rate (gamma-distributed, shifted by the
acquisition channel and device), a lifetime after which they stop buying
(exponential, longer for some channels), a spend level, and orders that follow
a non-homogeneous Poisson process whose intensity has a yearly season and
campaign spikes. Customers are generated in chunks (each chunk written as its
own file before the next is drawn), so memory stays flat whatever ``N``.
Output is deterministic for a given seed and chunk size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from schemas.sources import CHANNELS, COUNTRIES, CUSTOMERS_SOURCE, DEVICES, ORDERS_SOURCE

COUNTRY_P = (0.35, 0.15, 0.12, 0.09, 0.06, 0.06, 0.06, 0.05, 0.03, 0.03)
CHANNEL_P = (0.35, 0.25, 0.2, 0.12, 0.08)
CHANNEL_RATE = (1.0, 0.8, 0.7, 1.4, 1.2)  # purchase-rate multiplier per channel
CHANNEL_LIFETIME = (1.0, 0.8, 0.6, 1.3, 1.5)  # lifetime multiplier per channel
DEVICE_P = (0.4, 0.5, 0.1)
DEVICE_RATE = (1.1, 1.0, 0.85)
BASE_RATE_PER_DAY = 0.08  # mean orders per active day (before multipliers)
RATE_SHAPE = 0.7  # gamma shape: < 1 means many rare buyers and a few heavy ones
MEAN_LIFETIME_DAYS = 420.0
CAMPAIGN_EVERY_DAYS = 45
CAMPAIGN_LENGTH_DAYS = 3
CAMPAIGN_LIFT = 2.5


@dataclass(frozen=True, kw_only=True)
class GenerateResult:
    customers: int
    orders: int
    files: int
    seconds: float
    out: Path


def daily_intensity(*, days: int, start: dt.date) -> np.ndarray:
    """Relative order intensity per day: yearly season (peak in late November) and campaigns."""
    t = np.arange(days)
    day_of_year = np.array([(start + dt.timedelta(days=int(d))).timetuple().tm_yday for d in t])
    season = 1.0 + 0.3 * np.cos(2 * np.pi * (day_of_year - 330) / 365.25)
    campaign = np.where((t % CAMPAIGN_EVERY_DAYS) < CAMPAIGN_LENGTH_DAYS, CAMPAIGN_LIFT, 1.0)
    return np.asarray(season * campaign, dtype=np.float64)


def _customer_ids(index: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise("C", pc.utf8_lpad(pa.array(index.astype(str)), 8, "0"), "")


def generate_chunk(
    *, chunk: int, first: int, n: int, days: int, start: dt.date, seed: int, intensity: np.ndarray
) -> tuple[pa.Table, pa.Table]:
    """Customers ``first .. first+n-1`` and their orders, drawn from their own seeded stream."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, chunk]))
    cumulative = np.concatenate([[0.0], np.cumsum(intensity)])
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_P)
    device = rng.choice(len(DEVICES), size=n, p=DEVICE_P)
    signup = rng.integers(-180, days, size=n)  # some customers predate the window
    rate = (
        rng.gamma(RATE_SHAPE, BASE_RATE_PER_DAY / RATE_SHAPE, size=n)
        * np.take(CHANNEL_RATE, channel)
        * np.take(DEVICE_RATE, device)
    )
    lifetime = rng.exponential(MEAN_LIFETIME_DAYS, size=n) * np.take(CHANNEL_LIFETIME, channel)
    spend = rng.lognormal(mean=3.2, sigma=0.5, size=n)  # typical item price per customer
    begin = np.clip(signup, 0, days)
    end = np.clip(signup + lifetime, 0, days).astype(np.int64)
    end = np.maximum(end, begin)
    mass = cumulative[end] - cumulative[begin]
    n_orders = rng.poisson(rate * mass)
    owner = np.repeat(np.arange(n), n_orders)
    u = rng.uniform(cumulative[begin[owner]], cumulative[end[owner]])
    day = np.clip(np.searchsorted(cumulative, u, side="right") - 1, 0, days - 1)
    quantity = 1 + rng.poisson(0.6, size=owner.size)
    price = spend[owner] * rng.lognormal(mean=0.0, sigma=0.25, size=owner.size)
    amount = np.round(quantity * price, 2)
    order_in_file = np.lexsort((owner, day))
    owner, day = owner[order_in_file], day[order_in_file]
    quantity, amount = quantity[order_in_file], amount[order_in_file]

    ids = _customer_ids(first + np.arange(n))
    epoch = (start - dt.date(1970, 1, 1)).days
    customers = pa.table(
        {
            "customer_id": ids,
            "signup_date": pa.array(epoch + signup, pa.int32()).cast(pa.date32()),
            "country": pa.array(np.take(COUNTRIES, country)),
            "channel": pa.array(np.take(CHANNELS, channel)),
            "device": pa.array(np.take(DEVICES, device)),
        }
    )
    seq = pa.array(np.arange(owner.size, dtype=np.int64)).cast(pa.string())
    orders = pa.table(
        {
            "order_id": pc.binary_join_element_wise(f"O{chunk:05d}-", seq, ""),
            "customer_id": ids.take(pa.array(owner)),
            "order_date": pa.array(epoch + day, pa.int32()).cast(pa.date32()),
            "quantity": pa.array(quantity, pa.int32()),
            "amount": pa.array(amount, pa.float64()),
        }
    )
    assert tuple(customers.column_names) == CUSTOMERS_SOURCE.columns
    assert tuple(orders.column_names) == ORDERS_SOURCE.columns
    return customers, orders


def generate(
    *,
    customers: int,
    days: int,
    seed: int,
    out: Path,
    start: dt.date = dt.date(2023, 1, 1),
    file_format: str = "parquet",
    chunk_customers: int = 100_000,
) -> GenerateResult:
    """Write ``out/customers/part-*.{fmt}`` and ``out/orders/part-*.{fmt}``, one chunk at a time."""
    if customers < 1 or days < 1 or chunk_customers < 1:
        raise ValueError("customers, days and chunk_customers must all be at least 1")
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format must be 'csv' or 'parquet', not {file_format!r}")
    began = time.perf_counter()
    intensity = daily_intensity(days=days, start=start)
    for source in (CUSTOMERS_SOURCE, ORDERS_SOURCE):
        (out / source.name).mkdir(parents=True, exist_ok=True)
    n_orders = 0
    n_files = 0
    for chunk, first in enumerate(range(0, customers, chunk_customers)):
        n = min(chunk_customers, customers - first)
        cust, orders = generate_chunk(
            chunk=chunk, first=first, n=n, days=days, start=start, seed=seed, intensity=intensity
        )
        for source, table in ((CUSTOMERS_SOURCE, cust), (ORDERS_SOURCE, orders)):
            path = out / source.name / f"part-{chunk:05d}.{file_format}"
            if file_format == "parquet":
                pq.write_table(table, path)
            else:
                pa_csv.write_csv(table, path)
            n_files += 1
        n_orders += orders.num_rows
    return GenerateResult(
        customers=customers,
        orders=n_orders,
        files=n_files,
        seconds=time.perf_counter() - began,
        out=out,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.lakehouse.synthetic", description=__doc__)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2023, 1, 1))
    parser.add_argument("--format", choices=("csv", "parquet"), default="parquet")
    parser.add_argument("--chunk-customers", type=int, default=100_000)
    args = parser.parse_args(argv)
    result = generate(
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        out=args.out,
        start=args.start,
        file_format=args.format,
        chunk_customers=args.chunk_customers,
    )
    print(
        f"wrote {result.customers:,} customers and {result.orders:,} orders "
        f"in {result.files} files under {result.out} ({result.seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
