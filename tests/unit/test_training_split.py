"""The purged walk-forward split: no label window that fits or stops the model overlaps one
that evaluates it, over a grid of horizons, steps and date counts (pure dates, no Spark)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from jobs.training.trainset import NotEnoughHistoryError, training_split

pytestmark = pytest.mark.unit

SCORE = dt.date(1998, 2, 1)


def days(as_of: dt.date, horizon: int) -> set[dt.date]:
    """The order days of the label of ``as_of``, counted one by one."""
    return {as_of + dt.timedelta(days=i) for i in range(horizon)}


@pytest.mark.parametrize(
    ("horizon", "step", "n_dates"),
    list(itertools.product([1, 7, 30, 90], [1, 7, 30], [3, 4, 20])),
)
def test_no_label_day_is_shared_across_periods(horizon: int, step: int, n_dates: int) -> None:
    split = training_split(SCORE, horizon_days=horizon, n_dates=n_dates, step_days=step)
    train_days = set().union(*(days(d, horizon) for d in split.train))
    valid_days = days(split.validation, horizon)
    hold_days = days(split.holdout, horizon)
    assert not train_days & valid_days
    assert not train_days & hold_days
    assert not valid_days & hold_days
    # Fitting never sees a day at or after the validation date; stopping none of the holdout's.
    assert max(train_days) < split.validation
    assert max(valid_days) < split.holdout
    assert max(hold_days) < SCORE  # the holdout's outcome is known by the score date
    assert len(split.dates) == n_dates == len(set(split.dates))
    assert split.dates == sorted(split.dates)
    gaps = {(b - a).days for a, b in itertools.pairwise(split.train)}
    assert gaps <= {step}
    # Tight: the newest training window ends the day before the validation date.
    assert max(train_days) == split.validation - dt.timedelta(days=1)


def test_too_little_history_fails_naming_the_dates() -> None:
    with pytest.raises(NotEnoughHistoryError) as err:
        training_split(
            SCORE,
            horizon_days=30,
            n_dates=20,
            step_days=7,
            first_order_date=dt.date(1997, 9, 1),
        )
    text = str(err.value)
    assert "1997-07-07..1997-11-03" in text  # the training dates needed
    assert "1997-09-01" in text and "only 9 of the 18 training dates" in text
    assert "model.allow_fewer_training_dates" in text


def test_fewer_dates_only_when_the_settings_allow_it() -> None:
    split = training_split(
        SCORE,
        horizon_days=30,
        n_dates=20,
        step_days=7,
        first_order_date=dt.date(1997, 9, 1),
        allow_fewer=True,
    )
    assert split.train[0] > dt.date(1997, 9, 1)
    assert len(split.train) == 9


def test_no_history_for_the_holdout_fails_even_when_fewer_are_allowed() -> None:
    with pytest.raises(NotEnoughHistoryError, match="the validation date has no history"):
        training_split(
            SCORE,
            horizon_days=30,
            n_dates=5,
            step_days=7,
            first_order_date=dt.date(1997, 12, 10),
            allow_fewer=True,
        )


def test_the_split_describes_every_period_for_mlflow() -> None:
    tags = training_split(SCORE, horizon_days=30, n_dates=4, step_days=7).describe()
    assert tags["training.holdout_as_of_date"] == "1998-01-02"
    assert tags["training.holdout_label_window"] == "1998-01-02..1998-01-31"
    assert tags["training.validation_label_window"] == "1997-12-03..1998-01-01"
    assert tags["training.train_as_of_dates"] == "1997-10-27,1997-11-03"
    assert tags["training.embargo_days"] == "30"
