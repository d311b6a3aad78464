"""BG/NBD ("buy till you die") baseline: P(at least one order in the next H days).

The beta-geometric / negative binomial distribution model of Fader, Hardie & Lee (2005),
"Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD Model", Marketing
Science 24(2), 275-284. While alive, a customer places repeat orders as a Poisson process
with rate ``lambda ~ Gamma(shape=r, rate=alpha)``; right after each repeat order they drop
out for good with probability ``p ~ Beta(a, b)``. A customer's history is summarised by

* ``x``   -- repeat purchases: distinct order days minus one (the first day is the "trial");
* ``t_x`` -- recency: days from the first to the last order day (0 when ``x == 0``);
* ``T``   -- age: days from the first order day to the scoring date ``as_of``.

The time unit is the day throughout, so ``alpha`` is in days and a horizon is a number of
days. Pure numpy/scipy/pandas (no Spark): the summaries are small, one row per customer,
and identical ``(x, t_x, T)`` rows are fitted once with a weight.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

FloatArray = NDArray[np.float64]

SUMMARY_COLUMNS = ("x", "t_x", "T")

# The optimiser works on log(r), log(alpha), log(a), log(b) inside these bounds
# (about 1e-11 to 7e10): a fit that ends on one of them is degenerate (warned about).
_LOG_BOUND = 25.0
# Within this distance of a == 1 the conditional expectation (a 0/0 there) is taken as the
# mean of its values at 1 +/- this step; the expression is smooth in ``a``.
_A_NEAR_ONE = 1e-5


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters (days as the time unit).

    ``r`` and ``alpha`` are the shape and rate of the gamma mixing distribution of the order
    rate (mean rate ``r / alpha`` orders per day); ``a`` and ``b`` are the beta mixing
    distribution of the drop-out probability after each repeat order (mean ``a / (a + b)``).
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name, value in zip(("r", "alpha", "a", "b"), astuple(self), strict=True):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and number > 0):
                raise ValueError(
                    f"BG/NBD parameter {name} must be a finite number > 0, got {value!r}"
                )
            object.__setattr__(self, name, number)


# --- customer summaries ---------------------------------------------------------------------


def summarise_orders(
    orders: pd.DataFrame,
    *,
    as_of: dt.date,
    customer_col: str = "customer_id",
    date_col: str = "order_date",
) -> pd.DataFrame:
    """Per-customer ``x``, ``t_x``, ``T`` (in days) from the orders placed before ``as_of``.

    Point in time: only orders whose day is strictly before ``as_of`` are used, so orders on
    or after ``as_of`` change nothing. Only the date part of ``as_of`` counts (a
    ``datetime`` is truncated to its day), order timestamps are truncated to their day
    (timezone-aware ones on their own wall clock), and several orders on one day are one
    purchase occasion.

    Returns one row per customer with at least one order before ``as_of``, sorted by
    customer, with columns ``customer_col``, ``x`` (distinct order days - 1), ``t_x`` (days
    from the first to the last order day) and ``T`` (days from the first order day to
    ``as_of``, hence >= 1), all counts as int64. Customers with no order before ``as_of``
    are left out: BG/NBD describes customers from their first purchase on, and
    ``x = t_x = T = 0`` would be a customer who does not exist yet (score them with a
    cold-start model instead). No orders before ``as_of`` gives an empty frame with those
    columns (which :func:`fit_bg_nbd` refuses).

    Raises ValueError when a column is missing or a row has no customer id or no date (a
    missing date cannot be placed before or after ``as_of``).
    """
    missing = [c for c in (customer_col, date_col) if c not in orders.columns]
    if missing:
        raise ValueError(
            f"summarise_orders: orders have no column(s) {missing}; columns are {list(orders.columns)}"
        )
    if customer_col == date_col:
        raise ValueError("summarise_orders: customer_col and date_col must differ")
    customers = orders[customer_col]
    n_missing_ids = int(customers.isna().sum())
    if n_missing_ids:
        raise ValueError(f"summarise_orders: {n_missing_ids} order(s) have no {customer_col}")
    dates = pd.to_datetime(orders[date_col])
    n_missing_dates = int(dates.isna().sum())
    if n_missing_dates:
        raise ValueError(f"summarise_orders: {n_missing_dates} order(s) have no {date_col}")
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_localize(None)
    day = dates.dt.normalize()
    cutoff = pd.Timestamp(_as_date(as_of))

    before = pd.DataFrame({"customer": customers.to_numpy(), "day": day.to_numpy()})
    before = before[before["day"] < cutoff].drop_duplicates()
    if before.empty:
        empty = pd.DataFrame(
            {
                customer_col: pd.Series([], dtype=customers.dtype),
                **{c: pd.Series([], dtype="int64") for c in SUMMARY_COLUMNS},
            }
        )
        return empty
    per_customer = before.groupby("customer", sort=True, observed=True)["day"].agg(
        first="min", last="max", days="size"
    )
    one_day = np.timedelta64(1, "D")
    out = pd.DataFrame(
        {
            customer_col: per_customer.index.to_numpy(),
            "x": (per_customer["days"].to_numpy() - 1).astype("int64"),
            "t_x": ((per_customer["last"] - per_customer["first"]) // one_day).to_numpy("int64"),
            "T": ((cutoff - per_customer["first"]) // one_day).to_numpy("int64"),
        }
    )
    return out


def _as_date(value: dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise TypeError(f"as_of must be a datetime.date, got {type(value).__name__}")


# --- likelihood and fit ---------------------------------------------------------------------


def _summaries(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[FloatArray, ...]:
    """Validated float arrays of one shape (a scalar is repeated to the others' shape)."""
    raw = [np.asarray(v, dtype=float) for v in (x, t_x, T)]
    shapes = sorted({a.shape for a in raw if a.ndim > 0})
    if len(shapes) > 1:
        raise ValueError(
            f"x, t_x and T must have the same length (a scalar is repeated), got shapes {shapes}"
        )
    xs, txs, Ts = (np.ascontiguousarray(a) for a in np.broadcast_arrays(*raw))
    for name, a in (("x", xs), ("t_x", txs), ("T", Ts)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} has {int(np.sum(~np.isfinite(a)))} non-finite value(s)")
    if np.any(xs < 0) or np.any(xs != np.floor(xs)):
        raise ValueError("x (repeat purchases) must be whole numbers >= 0")
    if np.any(txs < 0):
        raise ValueError("t_x (recency) must be >= 0")
    if np.any(txs > Ts):
        raise ValueError(f"t_x must be <= T; {int(np.sum(txs > Ts))} customer(s) have t_x > T")
    return xs, txs, Ts


def _log_terms(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    """A1 + A2, A3, A4 of the log-likelihood (A4 = -inf where x == 0), b + x - 1 (safe), x > 0."""
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)
    a12 = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(repeat, np.log(a) - np.log(b_x1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a12, a3, a4, b_x1, repeat


def log_likelihood(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (eq. 6 of the paper, in log-sum-exp form)."""
    xs, txs, Ts = _summaries(x, t_x, T)
    a12, a3, a4, _, _ = _log_terms(params.r, params.alpha, params.a, params.b, xs, txs, Ts)
    return np.asarray(a12 + np.logaddexp(a3, a4), dtype=float)


def _neg_mean_ll_and_grad(
    log_params: FloatArray,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    weights: FloatArray,
    penalizer: float,
) -> tuple[float, FloatArray]:
    """Weighted mean negative log-likelihood (+ penalty) and its gradient in log-parameters."""
    params = np.exp(log_params)
    r, alpha, a, b = (float(v) for v in params)
    a12, a3, a4, b_x1, repeat = _log_terms(r, alpha, a, b, x, t_x, T)
    ll = a12 + np.logaddexp(a3, a4)
    # Weights of the two terms inside the log-sum-exp (w4 = 0 where x == 0).
    w4 = np.exp(a4 - np.logaddexp(a3, a4))
    w3 = 1.0 - w4
    rx = r + x
    d_r = (
        special.digamma(rx)
        - special.digamma(r)
        + np.log(alpha)
        - w3 * np.log(alpha + T)
        - w4 * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - w3 * rx / (alpha + T) - w4 * rx / (alpha + t_x)
    dg_ab = special.digamma(a + b) - special.digamma(a + b + x)
    d_a = dg_ab + w4 / a
    d_b = dg_ab + special.digamma(b + x) - special.digamma(b) - np.where(repeat, w4 / b_x1, 0.0)

    total = float(weights.sum())
    value = -float(weights @ ll) / total + penalizer * float(params @ params)
    grad_params = np.array([-(weights @ d) / total for d in (d_r, d_alpha, d_a, d_b)])
    grad = grad_params * params + 2.0 * penalizer * params * params
    return value, grad


def fit_bg_nbd(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, penalizer: float = 0.0
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters from per-customer ``x``, ``t_x``, ``T`` (days).

    Maximises the closed-form log-likelihood of the paper (eq. 6; A1..A4 as in the
    ``lifetimes`` implementation, the A3/A4 sum in log-sum-exp form) with L-BFGS-B and its
    analytic gradient, over ``log(r), log(alpha), log(a), log(b)``. Identical
    ``(x, t_x, T)`` rows are aggregated first and weighted by their count, so the cost
    grows with the number of distinct summaries, not of customers; the aggregation is
    sorted, which makes the result deterministic and independent of row order.

    ``penalizer`` adds ``penalizer * (r**2 + alpha**2 + a**2 + b**2)`` to the mean negative
    log-likelihood, as ``lifetimes`` does; it is scale dependent (``alpha`` is in days, so
    it is shrunk much harder than with weeks), and 0 gives the plain MLE.

    Raises ValueError on empty or invalid input (non-finite values, negative or fractional
    ``x``, ``t_x`` outside ``[0, T]``) and when the likelihood or the fitted parameters are
    not finite. Warns (RuntimeWarning) when the optimiser reports no convergence or a
    parameter ends on its bound, and when no customer has a repeat purchase (the data
    cannot identify the model then).
    """
    if not (math.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be a finite number >= 0, got {penalizer!r}")
    xs, txs, Ts = _summaries(x, t_x, T)
    xs, txs, Ts = xs.ravel(), txs.ravel(), Ts.ravel()
    if xs.size == 0:
        raise ValueError("fit_bg_nbd: no customers to fit (x, t_x and T are empty)")
    grouped = (
        pd.DataFrame({"x": xs, "t_x": txs, "T": Ts}).groupby(["x", "t_x", "T"], sort=True).size()
    )
    index = grouped.index
    ux = index.get_level_values("x").to_numpy(dtype=float)
    utx = index.get_level_values("t_x").to_numpy(dtype=float)
    uT = index.get_level_values("T").to_numpy(dtype=float)
    weights = grouped.to_numpy(dtype=float)

    # Start from r = a = b = 1 and the alpha that matches the mean repeat rate.
    mean_rate = (float(np.average(ux, weights=weights)) + 1.0) / max(
        float(np.average(uT, weights=weights)), 1.0
    )
    start = np.log(np.array([1.0, 1.0 / mean_rate, 1.0, 1.0]))
    start = np.clip(start, -_LOG_BOUND + 1, _LOG_BOUND - 1)
    args = (ux, utx, uT, weights, float(penalizer))
    first_value, _ = _neg_mean_ll_and_grad(start, *args)
    if not math.isfinite(first_value):
        raise ValueError("fit_bg_nbd: the log-likelihood is not finite at the starting point")

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = optimize.minimize(
            _finite_objective,
            start,
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
            options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
        )
    fitted = np.exp(result.x)
    final_value = float(result.fun)
    if not (np.all(np.isfinite(fitted)) and math.isfinite(final_value)):
        raise ValueError(
            f"fit_bg_nbd: non-finite result (parameters {fitted.tolist()}, "
            f"mean negative log-likelihood {final_value}); optimiser said: {result.message}"
        )
    if not np.any(ux > 0):
        warnings.warn(
            "fit_bg_nbd: no customer has a repeat purchase (all x == 0): the drop-out "
            "parameters a and b are not identified and r, alpha are degenerate",
            RuntimeWarning,
            stacklevel=2,
        )
    _warn_if_doubtful(result)
    r, alpha, a, b = (float(v) for v in fitted)
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b)


def _finite_objective(log_params: FloatArray, *args: Any) -> tuple[float, FloatArray]:
    """The objective, with non-finite values (overflow far from the optimum) made huge so
    that the line search backs off instead of stopping."""
    value, grad = _neg_mean_ll_and_grad(log_params, *args)
    if not (math.isfinite(value) and np.all(np.isfinite(grad))):
        return 1e300, np.zeros_like(log_params)
    return value, grad


def _warn_if_doubtful(result: optimize.OptimizeResult) -> None:
    names = ("r", "alpha", "a", "b")
    on_bound = [n for n, v in zip(names, result.x, strict=True) if abs(v) >= _LOG_BOUND - 1e-6]
    if on_bound:
        warnings.warn(
            f"fit_bg_nbd: parameter(s) {on_bound} ended on their bound "
            f"(exp(+/-{_LOG_BOUND:g})); the data do not identify the model",
            RuntimeWarning,
            stacklevel=3,
        )
    # An L-BFGS-B line search that cannot improve any more in floating point is a stop at
    # the optimum, not a failure; anything else (iteration limit) is worth a warning.
    if not result.success and "ABNORMAL" not in str(result.message).upper():
        warnings.warn(
            f"fit_bg_nbd: the optimiser did not converge: {result.message}",
            RuntimeWarning,
            stacklevel=3,
        )


# --- predictions ----------------------------------------------------------------------------


def _check_horizon(horizon: float) -> float:
    value = float(horizon)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"horizon must be a finite number of days >= 0, got {horizon!r}")
    return value


def probability_alive(
    params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(still alive at T | x, t_x, T) (eq. 11 of Fader, Hardie & Lee's note / lifetimes).

    ``1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))``,
    computed as a logistic of the log-odds so that it neither overflows nor underflows; a
    customer without repeat purchases is alive (drop-out happens only after a repeat order).
    """
    xs, txs, Ts = _summaries(x, t_x, T)
    r, alpha, a, b = astuple(params)
    repeat = xs > 0
    b_x1 = np.where(repeat, b + xs - 1.0, 1.0)
    log_odds_dead = np.log(a) - np.log(b_x1) + (r + xs) * np.log1p((Ts - txs) / (alpha + txs))
    return np.asarray(np.where(repeat, special.expit(-log_odds_dead), 1.0), dtype=float)


def _log_no_order_if_alive(
    r: float, alpha: float, x: FloatArray, T: FloatArray, horizon: float
) -> FloatArray:
    """log P(no order in (T, T + horizon] | alive at T) = -(r + x) log(1 + horizon / (alpha + T))."""
    return np.asarray(-(r + x) * np.log1p(horizon / (alpha + T)), dtype=float)


def probability_of_order(
    params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, horizon: float
) -> FloatArray:
    """P(at least one order in ``(T, T + horizon]`` | x, t_x, T), ``horizon`` in days.

    Derivation. A customer who is dead at T orders no more. Under BG/NBD a customer can
    only drop out right after an order, so one who is alive at T and orders nothing in
    ``(T, T + horizon]`` is still alive then: no drop-out can interfere, and the chance of
    no order is the Poisson zero ``exp(-lambda * horizon)`` averaged over the posterior of
    the rate. Given the history and being alive at T the likelihood in lambda is
    ``lambda**x * exp(-lambda * T)``, so ``lambda | alive ~ Gamma(r + x, rate=alpha + T)``
    and ``E[exp(-lambda * t)] = ((alpha + T) / (alpha + T + t)) ** (r + x)``. Hence::

        P(Y(t) = 0) = (1 - P_alive) + P_alive * ((alpha + T) / (alpha + T + t)) ** (r + x)
        P(Y(t) >= 1) = P_alive * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x))

    with ``P_alive`` from :func:`probability_alive`; the bracket is evaluated with
    ``expm1``/``log1p``, so short horizons keep their precision. It is 0 at horizon 0,
    increases with the horizon and tends to ``P_alive``.
    """
    t = _check_horizon(horizon)
    xs, txs, Ts = _summaries(x, t_x, T)
    p_alive = probability_alive(params, xs, txs, Ts)
    some_order_if_alive = -np.expm1(_log_no_order_if_alive(params.r, params.alpha, xs, Ts, t))
    return np.asarray(np.clip(p_alive * some_order_if_alive, 0.0, 1.0), dtype=float)


def expected_orders(
    params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, horizon: float
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected repeat orders in ``(T, T + t]`` (eq. 10 of the paper).

    ``P_alive * (a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
    * 2F1(r + x, b + x; a + b + x - 1; z)]`` with ``z = t / (alpha + T + t)``.

    Numerical guards: the product of the power and the hypergeometric function is taken
    through Euler's transformation, ``(1 - z) ** (a - 1) * 2F1(a + b - 1 - r, a - 1;
    a + b + x - 1; z)``, which stays finite where the textbook form gives ``0 * inf``
    (many repeat orders, long horizons); at ``a == 1`` (a removable 0/0) it is the mean of
    the values at ``a = 1 +/- 1e-5``; and the result is kept within the bounds it must
    satisfy, ``P(Y(t) >= 1) <= E[Y(t)] <= P_alive * (r + x) * t / (alpha + T)`` (the
    latter is the expectation without any drop-out). Raises ValueError if it is still not
    finite.
    """
    t = _check_horizon(horizon)
    xs, txs, Ts = _summaries(x, t_x, T)
    r, alpha, a, b = astuple(params)
    p_alive = probability_alive(params, xs, txs, Ts)
    if abs(a - 1.0) < _A_NEAR_ONE:
        alive_mean = 0.5 * (
            _expected_if_alive(r, alpha, 1.0 - _A_NEAR_ONE, b, xs, Ts, t)
            + _expected_if_alive(r, alpha, 1.0 + _A_NEAR_ONE, b, xs, Ts, t)
        )
    else:
        alive_mean = _expected_if_alive(r, alpha, a, b, xs, Ts, t)
    expected = p_alive * alive_mean
    if not np.all(np.isfinite(expected)):
        bad = int(np.sum(~np.isfinite(expected)))
        raise ValueError(f"expected_orders: {bad} non-finite value(s) for {params}")
    lower = probability_of_order(params, xs, txs, Ts, horizon=t)
    upper = p_alive * (r + xs) * t / (alpha + Ts)
    return np.asarray(np.clip(expected, lower, np.maximum(lower, upper)), dtype=float)


def _expected_if_alive(
    r: float, alpha: float, a: float, b: float, x: FloatArray, T: FloatArray, t: float
) -> FloatArray:
    """E[Y(t) | alive at T, x, T]: eq. 10 without its P_alive factor (Euler-transformed)."""
    z = t / (alpha + T + t)
    log_one_minus_z = -np.log1p(t / (alpha + T))
    c = a + b + x - 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.exp((a - 1.0) * log_one_minus_z) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        return np.asarray(c / (a - 1.0) * (1.0 - tail), dtype=float)
