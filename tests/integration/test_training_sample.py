"""Training sets above ``model.max_training_rows`` are a seeded customer sample drawn in Spark:
never above the cap, every customer with all its dates, every label class at the same rate."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobs.lakehouse.ingest import cdnow_path, ingest_orders
from jobs.training.trainset import TrainingData, load_training_data
from schemas.settings import Settings, primary_definition

pytestmark = pytest.mark.integration

SCORE_DATE = dt.date(1998, 2, 1)
CAP = 30_000


def load(spark: Any, settings: Settings, *, max_rows: int) -> TrainingData:
    model = settings.model.model_copy(update={"training_dates": 4, "max_training_rows": max_rows})
    capped = settings.model_copy(update={"model": model})
    return load_training_data(
        spark, capped, definition=primary_definition(capped), score_date=SCORE_DATE
    )


@pytest.fixture(scope="module")
def both(spark: Any, settings: Settings) -> tuple[TrainingData, TrainingData]:
    ingest_orders(spark, settings, path=cdnow_path())  # skipped when this run already ingested it
    return load(spark, settings, max_rows=10_000_000), load(spark, settings, max_rows=CAP)


def test_the_sample_stays_under_the_cap_and_says_so(
    both: tuple[TrainingData, TrainingData],
) -> None:
    full, sample = both
    assert len(full.frame) > 3 * CAP  # the cap binds
    assert full.sample is not None and full.sample.fraction == 1.0
    assert sample.sample is not None and 0 < sample.sample.fraction < 1
    assert len(sample.frame) <= CAP
    # The bound the fraction came from is the real row count (customers with history per date).
    assert sample.sample.row_bound == len(full.frame)
    assert len(sample.frame) == pytest.approx(sample.sample.fraction * len(full.frame), rel=0.05)


def test_a_sampled_customer_keeps_every_date_and_its_rows_are_unchanged(
    both: tuple[TrainingData, TrainingData],
) -> None:
    full, sample = both
    keys = ["customer_id", "as_of_date"]
    chosen = set(sample.frame["customer_id"])
    expected = full.frame[full.frame["customer_id"].isin(chosen)].reset_index(drop=True)
    got = sample.frame[expected.columns].reset_index(drop=True)
    assert (
        got.sort_values(keys)
        .reset_index(drop=True)
        .equals(expected.sort_values(keys).reset_index(drop=True))
    )


def test_every_label_class_and_period_is_sampled_at_the_same_rate(
    both: tuple[TrainingData, TrainingData],
) -> None:
    full, sample = both
    assert sample.sample is not None
    fraction = sample.sample.fraction
    for role in ("train", "validation", "holdout"):
        f, s = full.period(role), sample.period(role)
        for label in (0, 1):
            n_full = int((f["label"] == label).sum())
            n_sample = int((s["label"] == label).sum())
            # Binomial: within four standard deviations of the expected count.
            sd = (n_full * fraction * (1 - fraction)) ** 0.5
            assert abs(n_sample - fraction * n_full) <= 4 * sd + 1, (role, label)
