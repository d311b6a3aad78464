"""BG/NBD baseline: parameter recovery on simulated customers, the closed forms, ranking of
future orders, point-in-time summaries and refusal of bad input."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from jobs.training.btyd import (
    BgNbdParams,
    expected_orders,
    fit_bg_nbd,
    log_likelihood,
    probability_alive,
    probability_of_order,
    summarise_orders,
)

pytestmark = pytest.mark.unit

# Days-scale truth: mean order rate r / alpha = 1 order per 120 days while alive, mean
# drop-out probability after an order a / (a + b) ~ 0.24.
TRUE = BgNbdParams(r=0.25, alpha=30.0, a=0.8, b=2.5)
# 50k customers with 6 months to 3 years of history: across 20 seeds the worst relative
# errors were about 2% (r, alpha) and 5-6% (a, b), so these tolerances are not luck. With
# 20k customers b's standard error is ~9% and a 15% tolerance would be < 2 SE.
N_CUSTOMERS = 50_000
TOLERANCE = {"r": 0.10, "alpha": 0.10, "a": 0.15, "b": 0.15}
HORIZON = 90
AS_OF = dt.date(2024, 7, 1)


def simulate_events(
    params: BgNbdParams, T: np.ndarray, horizon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases of BG/NBD customers up to T + horizon, as (customer, time) arrays.

    Time 0 is each customer's first (trial) purchase, not included. While alive a customer
    buys as a Poisson process with rate lambda ~ Gamma(r, rate=alpha) and drops out right
    after each purchase with probability p ~ Beta(a, b).
    """
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    clock = np.zeros(n)
    customers, times = [], []
    active = np.arange(n)
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / lam[active]
        now = clock[active]
        inside = now <= T[active] + horizon
        customers.append(active[inside])
        times.append(now[inside])
        dies = rng.random(active.size) < p[active]
        active = active[inside & ~dies]
    return np.concatenate(customers), np.concatenate(times)


def continuous_summaries(
    n: int, customers: np.ndarray, times: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, t_x and the number of purchases in (T, T + horizon] in continuous time."""
    past = times <= T[customers]
    x = np.bincount(customers[past], minlength=n).astype(float)
    t_x = np.zeros(n)
    np.maximum.at(t_x, customers[past], times[past])
    future = np.bincount(customers[~past], minlength=n)
    return x, t_x, future


@pytest.fixture(scope="module")
def simulated() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    T = rng.integers(180, 1096, N_CUSTOMERS).astype(float)
    customers, times = simulate_events(TRUE, T, HORIZON, rng)
    x, t_x, future = continuous_summaries(N_CUSTOMERS, customers, times, T)
    return {"x": x, "t_x": t_x, "T": T, "future": future, "customers": customers, "times": times}


@pytest.fixture(scope="module")
def fitted(simulated: dict[str, np.ndarray]) -> BgNbdParams:
    return fit_bg_nbd(simulated["x"], simulated["t_x"], simulated["T"])


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half)."""
    positive = labels.astype(bool)
    ranks = stats.rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- (1) parameter recovery ------------------------------------------------------------------


def test_fit_recovers_the_simulated_parameters(fitted: BgNbdParams) -> None:
    for name, tolerance in TOLERANCE.items():
        true, got = getattr(TRUE, name), getattr(fitted, name)
        assert got == pytest.approx(true, rel=tolerance), (name, got, true)


def test_fit_is_the_maximum_of_the_likelihood(
    simulated: dict[str, np.ndarray], fitted: BgNbdParams
) -> None:
    data = (simulated["x"], simulated["t_x"], simulated["T"])
    best = log_likelihood(fitted, *data).sum()
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.99, 1.01):
            moved = BgNbdParams(**{**vars(fitted), name: getattr(fitted, name) * factor})
            assert log_likelihood(moved, *data).sum() < best


def test_fit_is_deterministic_and_independent_of_row_order(
    simulated: dict[str, np.ndarray], fitted: BgNbdParams
) -> None:
    order = np.random.default_rng(7).permutation(len(simulated["x"]))
    again = fit_bg_nbd(simulated["x"][order], simulated["t_x"][order], simulated["T"][order])
    assert again == fitted


def test_fit_agrees_with_lifetimes(simulated: dict[str, np.ndarray], fitted: BgNbdParams) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    n = 5000  # lifetimes' Nelder-Mead is slow; a subset is enough to compare optima
    data = (simulated["x"][:n], simulated["t_x"][:n], simulated["T"][:n])
    ours = fit_bg_nbd(*data)
    theirs = lifetimes.BetaGeoFitter().fit(*data).params_
    for name in ("r", "alpha", "a", "b"):
        assert getattr(ours, name) == pytest.approx(theirs[name], rel=1e-4), name
    assert (
        log_likelihood(ours, *data).sum()
        >= log_likelihood(
            BgNbdParams(**{k: float(theirs[k]) for k in ("r", "alpha", "a", "b")}), *data
        ).sum()
        - 1e-6
    )


def test_penalizer_shrinks_the_parameters(simulated: dict[str, np.ndarray]) -> None:
    data = (simulated["x"][:5000], simulated["t_x"][:5000], simulated["T"][:5000])
    plain, shrunk = fit_bg_nbd(*data), fit_bg_nbd(*data, penalizer=0.01)
    norm = [sum(v * v for v in vars(p).values()) for p in (plain, shrunk)]
    assert norm[1] < norm[0]


# --- (2) closed forms ------------------------------------------------------------------------

HAND = BgNbdParams(r=1.0, alpha=2.0, a=1.0, b=3.0)


def test_probability_of_order_by_hand() -> None:
    # x=2, t_x=3, T=8: odds(dead) = a/(b+x-1) * ((alpha+T)/(alpha+t_x))**(r+x) = 1/4 * 2**3 = 2,
    # so P(alive) = 1/3; P(no order in 10 days | alive) = (10/20)**3 = 1/8 -> P = 1/3 * 7/8.
    assert probability_alive(HAND, [2], [3], [8]) == pytest.approx([1 / 3])
    assert probability_of_order(HAND, [2], [3], [8], horizon=10) == pytest.approx([7 / 24])
    # x=0: alive for sure, P = 1 - ((alpha+T)/(alpha+T+t))**r = 1 - 10/20.
    assert probability_of_order(HAND, [0], [0], [8], horizon=10) == pytest.approx([0.5])
    # The same as 1 - exp(-(r+x) log(1 + t/(alpha+T))) times P(alive), for other numbers.
    params = BgNbdParams(r=0.3, alpha=25.0, a=0.7, b=2.0)
    x, t_x, T, t = 4.0, 200.0, 400.0, 60.0
    p_alive = 1 / (1 + 0.7 / (2.0 + x - 1) * ((25 + T) / (25 + t_x)) ** (0.3 + x))
    want = p_alive * (1 - np.exp(-(0.3 + x) * np.log1p(t / (25 + T))))
    assert probability_of_order(params, [x], [t_x], [T], horizon=t) == pytest.approx([want])


def test_probability_of_order_is_a_probability_increasing_with_the_horizon(
    simulated: dict[str, np.ndarray], fitted: BgNbdParams
) -> None:
    data = (simulated["x"], simulated["t_x"], simulated["T"])
    p_alive = probability_alive(fitted, *data)
    horizons = [0, 1, 7, 30, 90, 365, 3650, 1e20]
    curves = np.array([probability_of_order(fitted, *data, horizon=h) for h in horizons])
    assert np.all((curves >= 0) & (curves <= 1))
    assert np.all(curves[0] == 0)
    assert np.all(np.diff(curves, axis=0) >= 0)
    assert np.all(np.diff(curves, axis=0).sum(axis=0) > 0)
    assert np.all(curves <= p_alive + 1e-12)
    assert curves[-1] == pytest.approx(p_alive, abs=1e-3)


def test_probability_alive_matches_lifetimes(
    simulated: dict[str, np.ndarray], fitted: BgNbdParams
) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    model = lifetimes.BetaGeoFitter()
    model.params_ = pd.Series(vars(fitted))
    x, t_x, T = simulated["x"][:2000], simulated["t_x"][:2000], simulated["T"][:2000]
    theirs = model.conditional_probability_alive(x, t_x, T)
    np.testing.assert_allclose(probability_alive(fitted, x, t_x, T), theirs, rtol=1e-9)
    expected = model.conditional_expected_number_of_purchases_up_to_time(HORIZON, x, t_x, T)
    np.testing.assert_allclose(
        expected_orders(fitted, x, t_x, T, horizon=HORIZON), expected, rtol=1e-6
    )


def expected_by_quadrature(params: BgNbdParams, x: float, t_x: float, T: float, t: float) -> float:
    """E[Y(t) | x, t_x, T] = P(alive) * E_p[(1 - ((alpha+T)/(alpha+T+p t))**(r+x)) / p] with
    p | alive ~ Beta(a, b + x): the same quantity as eq. 10, without the hypergeometric."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b

    def integrand(p: float) -> float:
        if_alive = -np.expm1(-(r + x) * np.log1p(p * t / (alpha + T))) / p
        log_density = (a - 1) * np.log(p) + (b + x - 1) * np.log1p(-p) - special.betaln(a, b + x)
        return float(if_alive * np.exp(log_density))

    value, _ = integrate.quad(integrand, 0, 1, limit=500, epsabs=1e-12, epsrel=1e-10)
    return float(probability_alive(params, [x], [t_x], [T])[0] * value)


@pytest.mark.parametrize(
    ("params", "x", "t_x", "T", "t"),
    [
        (TRUE, 0, 0, 300, 90),
        (TRUE, 3, 250, 300, 90),
        (BgNbdParams(r=0.25, alpha=30.0, a=2.5, b=0.8), 12, 700, 720, 365),
        # Many orders and a long horizon: the textbook (1-z)**(r+x) * 2F1 is 0 * inf here.
        (BgNbdParams(r=1.1, alpha=0.5, a=0.72, b=0.37), 2000, 1290, 1290, 3650),
        (BgNbdParams(r=0.1, alpha=66.7, a=2.16, b=1.05), 2000, 28, 28, 90),
    ],
)
def test_expected_orders_matches_numerical_integration(
    params: BgNbdParams, x: float, t_x: float, T: float, t: float
) -> None:
    got = expected_orders(params, [x], [t_x], [T], horizon=t)
    assert got == pytest.approx([expected_by_quadrature(params, x, t_x, T, t)], rel=1e-6)


def test_expected_orders_bounds_and_a_equal_to_one(
    simulated: dict[str, np.ndarray], fitted: BgNbdParams
) -> None:
    data = (simulated["x"], simulated["t_x"], simulated["T"])
    expected = expected_orders(fitted, *data, horizon=HORIZON)
    assert np.all(np.isfinite(expected))
    # E[Y] >= P(Y >= 1), and the mean of the model's predictions tracks the simulated future.
    assert np.all(expected >= probability_of_order(fitted, *data, horizon=HORIZON))
    assert expected.mean() == pytest.approx(simulated["future"].mean(), rel=0.1)
    assert np.all(expected_orders(fitted, *data, horizon=0) == 0)
    # a == 1 is a removable singularity of eq. 10: values on either side agree with it.
    at_one = BgNbdParams(r=0.3, alpha=20.0, a=1.0, b=2.0)
    x, t_x, T = [0, 1, 5], [0, 50, 300], [100, 200, 400]
    middle = expected_orders(at_one, x, t_x, T, horizon=60)
    for a in (1 - 1e-3, 1 + 1e-3):
        near = expected_orders(BgNbdParams(r=0.3, alpha=20.0, a=a, b=2.0), x, t_x, T, horizon=60)
        np.testing.assert_allclose(middle, near, rtol=1e-3)
    np.testing.assert_allclose(
        middle,
        [expected_by_quadrature(at_one, *row, 60) for row in zip(x, t_x, T, strict=True)],
        rtol=1e-6,
    )


# --- (3) ranking of actual future orders -----------------------------------------------------


def test_probability_of_order_ranks_simulated_future_orders(
    simulated: dict[str, np.ndarray],
) -> None:
    # End to end in days: orders -> point-in-time summaries -> fit -> P(order in the next 90 days).
    T = simulated["T"].astype(int)
    first_day = pd.Timestamp(AS_OF) - pd.to_timedelta(T, unit="D")
    repeat_day = first_day[simulated["customers"]] + pd.to_timedelta(
        np.floor(simulated["times"]), unit="D"
    )
    orders = pd.DataFrame(
        {
            "customer_id": np.concatenate([np.arange(len(T)), simulated["customers"]]),
            "order_date": np.concatenate([first_day.to_numpy(), repeat_day.to_numpy()]),
        }
    )
    summary = summarise_orders(orders, as_of=AS_OF)
    assert len(summary) == len(T)
    params = fit_bg_nbd(summary["x"], summary["t_x"], summary["T"])
    scores = probability_of_order(
        params, summary["x"], summary["t_x"], summary["T"], horizon=HORIZON
    )

    end = pd.Timestamp(AS_OF) + pd.Timedelta(days=HORIZON)
    days = orders["order_date"]
    in_window = (days >= pd.Timestamp(AS_OF)) & (days < end)
    ordered = np.zeros(len(T), dtype=bool)
    ordered[orders.loc[in_window, "customer_id"].to_numpy()] = True
    labels = ordered[summary["customer_id"].to_numpy()]

    assert auc(labels, scores) > 0.6
    # Calibrated on average, too: the simulated future follows the model.
    assert scores.mean() == pytest.approx(labels.mean(), abs=0.02)


# --- (4) point-in-time summaries -------------------------------------------------------------


def orders_frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "order_date"]).astype(
        {"order_date": "datetime64[ns]"}
    )


BASE_ORDERS = [
    ("a", "2024-01-01"),
    ("a", "2024-01-01 18:30"),  # same day: one purchase occasion
    ("a", "2024-01-11"),
    ("a", "2024-02-10"),
    ("b", "2024-06-30"),
]


def test_summarise_orders_counts_days_before_as_of() -> None:
    summary = summarise_orders(orders_frame(BASE_ORDERS), as_of=AS_OF)
    assert summary.to_dict("records") == [
        {"customer_id": "a", "x": 2, "t_x": 40, "T": 182},
        {"customer_id": "b", "x": 0, "t_x": 0, "T": 1},
    ]
    assert all(summary[c].dtype == np.int64 for c in ("x", "t_x", "T"))


def test_summarise_orders_is_point_in_time() -> None:
    before = summarise_orders(orders_frame(BASE_ORDERS), as_of=AS_OF)
    later = [
        ("a", "2024-07-01"),  # on as_of
        ("a", "2024-07-01 23:59"),
        ("b", "2024-09-15"),
        ("c", "2024-07-01"),  # a customer whose first order is on as_of does not exist yet
    ]
    after = summarise_orders(orders_frame(BASE_ORDERS + later), as_of=AS_OF)
    pd.testing.assert_frame_equal(before, after)
    # A datetime as_of counts by its day only.
    at_noon = summarise_orders(
        orders_frame(BASE_ORDERS + later), as_of=dt.datetime(2024, 7, 1, 12, 0)
    )
    pd.testing.assert_frame_equal(before, at_noon)


def test_summarise_orders_accepts_custom_columns_dates_and_time_zones() -> None:
    orders = pd.DataFrame(
        {
            "cust": [10, 10, 11],
            "placed_at": pd.to_datetime(
                ["2024-06-01 23:30", "2024-06-20 00:10", "2024-06-30 23:59"]
            ).tz_localize("Europe/Paris"),
        }
    )
    summary = summarise_orders(orders, as_of=AS_OF, customer_col="cust", date_col="placed_at")
    assert summary.to_dict("records") == [
        {"cust": 10, "x": 1, "t_x": 19, "T": 30},
        {"cust": 11, "x": 0, "t_x": 0, "T": 1},
    ]
    as_dates = orders.assign(placed_at=[dt.date(2024, 6, 1), dt.date(2024, 6, 20), AS_OF])
    assert summarise_orders(
        as_dates, as_of=AS_OF, customer_col="cust", date_col="placed_at"
    ).to_dict("records") == [{"cust": 10, "x": 1, "t_x": 19, "T": 30}]


# --- (5) refusals ----------------------------------------------------------------------------


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no customers to fit"):
        fit_bg_nbd([], [], [])
    empty = summarise_orders(orders_frame([]), as_of=AS_OF)
    assert empty.empty
    assert list(empty.columns) == ["customer_id", "x", "t_x", "T"]
    # Orders that all come on or after as_of leave nobody to fit either.
    nobody = summarise_orders(orders_frame([("a", "2024-07-02")]), as_of=AS_OF)
    with pytest.raises(ValueError, match="no customers to fit"):
        fit_bg_nbd(nobody["x"], nobody["t_x"], nobody["T"])


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1, 2], [1], [3, 4], "same length"),
        ([1, 2], [1, 1, 1], 5, "same length"),
        ([1, np.nan], [1, 1], [3, 4], "x has 1 non-finite"),
        ([1, 1], [1, 1], [3, np.inf], "T has 1 non-finite"),
        ([-1, 1], [0, 1], [3, 4], "whole numbers"),
        ([1.5, 1], [1, 1], [3, 4], "whole numbers"),
        ([1, 1], [5, 1], [3, 4], "t_x must be <= T"),
        ([1, 1], [-1, 1], [3, 4], "t_x .* >= 0"),
    ],
)
def test_invalid_summaries_are_refused(
    x: list[float], t_x: list[float], T: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_bg_nbd(x, t_x, T)
    with pytest.raises(ValueError, match=message):
        probability_of_order(TRUE, x, t_x, T, horizon=30)


def test_other_refusals() -> None:
    with pytest.raises(ValueError, match="parameter alpha must be a finite number > 0"):
        BgNbdParams(r=1.0, alpha=0.0, a=1.0, b=1.0)
    with pytest.raises(ValueError, match="parameter b must be a finite number > 0"):
        BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=float("nan"))
    with pytest.raises(ValueError, match="penalizer"):
        fit_bg_nbd([1], [1], [2], penalizer=-1.0)
    with pytest.raises(ValueError, match="horizon"):
        probability_of_order(TRUE, [1], [1], [2], horizon=-1)
    with pytest.raises(ValueError, match="horizon"):
        expected_orders(TRUE, [1], [1], [2], horizon=float("nan"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['order_date'\]"):
        summarise_orders(pd.DataFrame({"customer_id": [1]}), as_of=AS_OF)
    with pytest.raises(ValueError, match="1 order\\(s\\) have no order_date"):
        summarise_orders(orders_frame([("a", "2024-01-01"), ("a", None)]), as_of=AS_OF)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="1 order\\(s\\) have no customer_id"):
        summarise_orders(orders_frame([(None, "2024-01-01")]), as_of=AS_OF)  # type: ignore[list-item]


def test_degenerate_data_warns() -> None:
    # Nobody ever came back: r -> 0 is the "best" fit, and a, b are not identified at all.
    with pytest.warns(RuntimeWarning, match="no customer has a repeat purchase"):
        fit_bg_nbd(np.zeros(100), np.zeros(100), np.full(100, 365.0))


# --- scale -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_on_a_million_customers() -> None:
    rng = np.random.default_rng(1)
    n = 1_000_000
    T = rng.integers(1, 1096, n).astype(float)
    customers, times = simulate_events(TRUE, T, 0.0, rng)
    x, t_x, _ = continuous_summaries(n, customers, np.ceil(times), T)  # whole days, as in prod
    start = time.perf_counter()
    params = fit_bg_nbd(x, t_x, T)
    elapsed = time.perf_counter() - start
    print(f"fit_bg_nbd on {n} customers: {elapsed:.2f}s -> {params}")
    for name, tolerance in TOLERANCE.items():
        assert getattr(params, name) == pytest.approx(getattr(TRUE, name), rel=tolerance), name
