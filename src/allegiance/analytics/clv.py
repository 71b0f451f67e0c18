"""Customer lifetime value: the BG/NBD and Gamma-Gamma models, pure math on NumPy arrays.

Time is measured in weeks (days / 7) and several purchases by one customer on one day count as
one transaction, as in Fader, Hardie & Lee (2005). For every customer the calibration period
gives an RFM summary: ``x`` repeat transactions (all transactions but the first), ``t_x`` the
time of the last transaction and ``T`` the time of the end of the period, both counted from the
first transaction, and ``m_x`` the mean value of the repeat transactions.

- BG/NBD ("Counting your customers the easy way", Marketing Science 24(2), 2005): while active, a
  customer buys at a Poisson rate drawn from Gamma(r, alpha); after every transaction she drops
  out with probability p drawn from Beta(a, b).
- Gamma-Gamma ("RFM and CLV: using iso-value curves", JMR 42(4), 2005): the value of a
  transaction is Gamma(p, nu) with nu drawn from Gamma(q, gamma), independent of the
  transaction process.

Parameters are fitted by maximum likelihood (``scipy.optimize.minimize``, BFGS with analytic
gradients on log-parameters, several starting points, the best optimum kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAYS_PER_WEEK = 7.0


# ---------------------------------------------------------------------------------------------
# RFM summary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RFM:
    """One row per customer (sorted by customer id) summarising the calibration period."""

    customers: npt.NDArray[Any]
    first: npt.NDArray[np.datetime64]  # day of the first transaction
    x: FloatArray  # repeat transactions
    t_x: FloatArray  # weeks from the first to the last transaction
    T: FloatArray  # weeks from the first transaction to the end of the period
    m_x: FloatArray  # mean value of the repeat transactions (0 when x == 0)
    total: FloatArray  # historical value: everything spent in the period, first purchase included

    def __len__(self) -> int:
        return len(self.x)

    @property
    def repeaters(self) -> npt.NDArray[np.bool_]:
        return self.x > 0


def _days(dates: npt.ArrayLike) -> IntArray:
    return np.asarray(dates, dtype="datetime64[D]").astype(np.int64)


def transactions(
    customers: npt.ArrayLike, dates: npt.ArrayLike, amounts: npt.ArrayLike
) -> tuple[npt.NDArray[Any], IntArray, IntArray, FloatArray]:
    """Collapse purchases to transactions: one per customer and day, amounts summed.

    Returns ``(customer ids, customer index per transaction, day number per transaction,
    amount per transaction)``, sorted by customer then day.
    """
    cust = np.asarray(customers)
    days = _days(dates)
    value = np.asarray(amounts, dtype=np.float64)
    if not (len(cust) == len(days) == len(value)):
        raise ValueError("customers, dates and amounts must have the same length")
    ids, cust_index = np.unique(cust, return_inverse=True)
    cust_index = cust_index.astype(np.int64).ravel()
    if len(days) == 0:
        return ids, cust_index, days, value
    day0 = int(days.min())
    span = int(days.max()) - day0 + 1
    keys, key_index = np.unique(cust_index * span + (days - day0), return_inverse=True)
    spent = np.bincount(key_index.ravel(), weights=value, minlength=len(keys))
    return ids, keys // span, keys % span + day0, spent.astype(np.float64)


def rfm_summary(
    customers: npt.ArrayLike,
    dates: npt.ArrayLike,
    amounts: npt.ArrayLike,
    calibration_end: np.datetime64 | str,
) -> RFM:
    """RFM summary of the purchases on or before ``calibration_end`` (weeks, one per day)."""
    days = _days(dates)
    end = int(_days(calibration_end))
    keep = days <= end
    ids, cust, tx_day, spent = transactions(
        np.asarray(customers)[keep], days[keep], np.asarray(amounts, dtype=np.float64)[keep]
    )
    n = len(ids)
    count = np.bincount(cust, minlength=n)
    first_pos = np.searchsorted(cust, np.arange(n), side="left")
    last_pos = np.searchsorted(cust, np.arange(n), side="right") - 1
    first_day = tx_day[first_pos]
    total = np.bincount(cust, weights=spent, minlength=n).astype(np.float64)
    x = (count - 1).astype(np.float64)
    repeat_spend = total - spent[first_pos]
    m_x = np.divide(repeat_spend, x, out=np.zeros(n), where=x > 0)
    return RFM(
        customers=ids,
        first=first_day.astype("datetime64[D]"),
        x=x,
        t_x=(tx_day[last_pos] - first_day) / DAYS_PER_WEEK,
        T=(end - first_day) / DAYS_PER_WEEK,
        m_x=m_x,
        total=total,
    )


# ---------------------------------------------------------------------------------------------
# Maximum likelihood
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    params: tuple[float, ...]
    log_likelihood: float
    starts: int  # starting points tried
    converged: bool


def _maximise(
    log_likelihood: Callable[[FloatArray], tuple[float, FloatArray]],
    starts: Sequence[Sequence[float]],
) -> Fit:
    """Maximise a log-likelihood over positive parameters, searching on their logarithms.

    ``log_likelihood(params)`` returns the value and its gradient with respect to the params.
    """

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        with np.errstate(all="ignore"):  # wild line-search steps fall back to a huge loss
            params = np.exp(log_params)
            value, gradient = log_likelihood(params)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e300, np.zeros_like(params)
        return -value, -gradient * params  # chain rule: d/d(log t) = t * d/dt

    best: Any = None
    for start in starts:
        result = minimize(
            objective, np.log(np.asarray(start, dtype=np.float64)), jac=True, method="BFGS",
            options={"gtol": 1e-8, "maxiter": 500},
        )
        if best is None or result.fun < best.fun:
            best = result
    params = tuple(float(v) for v in np.exp(best.x))
    return Fit(params, -float(best.fun), len(starts), bool(best.success))


# ---------------------------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BGNBD:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)

    def _odds_dropped(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """P(dropped out) / P(alive) given the history (0 for customers without repeats)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return np.where(x > 0, odds, 0.0)

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Probability that each customer is still active at the end of the calibration."""
        xs, tx, tt = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        return 1.0 / (1.0 + self._odds_dropped(xs, tx, tt))

    def expected_purchases(
        self, t: float | npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[transactions in the next ``t`` weeks | x, t_x, T] (FHL 2005, eq. 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        xs, tx, tt = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        ts = np.asarray(t, dtype=np.float64)
        z = ts / (alpha + tt + ts)
        head = (a + b + xs - 1) / (a - 1)
        tail = 1 - ((alpha + tt) / (alpha + tt + ts)) ** (r + xs) * hyp2f1(
            r + xs, b + xs, a + b + xs - 1, z
        )
        return np.asarray(head * tail / (1 + self._odds_dropped(xs, tx, tt)), dtype=np.float64)

    def expected_cumulative(self, t: float | npt.ArrayLike) -> FloatArray:
        """E[X(t)]: repeat transactions of a new customer in the ``t`` weeks after her first."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        ts = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        value = (a + b - 1) / (a - 1) * (
            1 - (alpha / (alpha + ts)) ** r * hyp2f1(r, b, a + b - 1, ts / (alpha + ts))
        )
        return np.asarray(value, dtype=np.float64)

    def expected_tracking(self, first_offsets: npt.ArrayLike, weeks: npt.ArrayLike) -> FloatArray:
        """Expected cumulative repeat transactions of a cohort at the end of each week.

        ``first_offsets``: weeks from the start of the calendar to each customer's first
        transaction; ``weeks``: the week ends (weeks from the start) to evaluate.
        """
        s = np.asarray(first_offsets, dtype=np.float64)
        w = np.asarray(weeks, dtype=np.float64)
        unique, counts = np.unique(s, return_counts=True)
        grid = self.expected_cumulative(w[:, None] - unique[None, :])
        return np.asarray(grid @ counts.astype(np.float64), dtype=np.float64)


def _by_count(x: FloatArray) -> Callable[[Callable[[FloatArray], Any], Any], FloatArray]:
    """``apply(f, v)`` = ``f(v + x)`` elementwise, evaluated once per distinct count when the
    counts are small integers (they are: transactions per customer) — the special functions
    are the cost of a likelihood evaluation, and a million customers have a few dozen
    distinct counts."""
    counts = x.astype(np.int64)
    top = int(counts.max()) if len(counts) else 0
    if top > 100_000 or counts.min(initial=0) < 0 or not np.array_equal(counts, x):
        return lambda f, v: np.asarray(f(v + x), dtype=np.float64)
    table = np.arange(top + 1, dtype=np.float64)
    return lambda f, v: np.asarray(f(v + table), dtype=np.float64)[counts]


def _bgnbd_terms(
    params: Sequence[float] | FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-customer log-likelihood and its gradient (rows r, alpha, a, b)."""
    r, alpha, a, b = (float(v) for v in params)
    at = _by_count(x)
    common = (at(gammaln, r) - gammaln(r) + r * np.log(alpha)
              + at(lambda v: betaln(a, v), b) - betaln(a, b))
    stay = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x)
    drop = np.where(x > 0, drop, -np.inf)
    mixed = np.logaddexp(stay, drop)
    w = np.exp(drop - mixed)  # share of the "dropped out after the last purchase" branch
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_b = np.where(x > 0, 1.0 / (b + x - 1), 0.0)
    digamma_abx = at(digamma, a + b)
    gradient = np.stack([
        at(digamma, r) - digamma(r) + np.log(alpha)
        - (1 - w) * np.log(alpha + T) - w * np.log(alpha + t_x),
        r / alpha - (r + x) * ((1 - w) / (alpha + T) + w / (alpha + t_x)),
        digamma(a + b) - digamma_abx + w / a,
        at(digamma, b) - digamma(b) + digamma(a + b) - digamma_abx - w * inv_b,
    ])
    return np.asarray(common + mixed, dtype=np.float64), np.asarray(gradient, dtype=np.float64)


def bgnbd_log_likelihood(
    params: Sequence[float] | FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """Log-likelihood of each customer under BG/NBD(r, alpha, a, b) (FHL 2005, eq. 6)."""
    return _bgnbd_terms(params, x, t_x, T)[0]


BGNBD_STARTS: tuple[tuple[float, float, float, float], ...] = (
    (1.0, 1.0, 1.0, 1.0),
    (0.5, 5.0, 0.5, 2.0),
    (0.2, 10.0, 2.0, 5.0),
)


# Above this many distinct histories, the starting points are tried on a sample of this size
# (fixed seed) and only the best sample optimum is refined on every customer: each likelihood
# evaluation costs in proportion to the rows, and the search from a poor start takes most of
# the evaluations. The optimum found is the full data's (BFGS runs to convergence on it).
SAMPLE = 20_000


def _sampled_start(columns: tuple[FloatArray, ...], fit: Callable[..., Sequence[float]],
                   starts: Sequence[Sequence[float]]) -> Sequence[Sequence[float]]:
    if len(starts) <= 1 or len(columns[0]) <= SAMPLE:
        return starts
    pick = np.random.default_rng(0).choice(len(columns[0]), SAMPLE, replace=False)
    return [fit(tuple(column[pick] for column in columns), starts)]


def _grouped(*columns: FloatArray) -> tuple[tuple[FloatArray, ...], FloatArray]:
    """Distinct rows of the columns with their multiplicities (customers share histories)."""
    stacked = np.column_stack(columns)
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return tuple(rows[:, i] for i in range(rows.shape[1])), counts.astype(np.float64)


def fit_bgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    starts: Sequence[Sequence[float]] = BGNBD_STARTS,
) -> BGNBD:
    """Maximum-likelihood BG/NBD parameters for the RFM arrays (weeks)."""
    xs, tx, tt = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    if len(xs) == 0:
        raise ValueError("no customers to fit")
    starts = _sampled_start((xs, tx, tt), lambda c, s: fit_bgnbd(c[0], c[1], c[2], s).params, starts)
    (gx, gtx, gT), weight = _grouped(xs, tx, tt)

    def log_likelihood(params: FloatArray) -> tuple[float, FloatArray]:
        values, gradient = _bgnbd_terms(params, gx, gtx, gT)
        return float(weight @ values), gradient @ weight

    fit = _maximise(log_likelihood, starts)
    r, alpha, a, b = fit.params
    return BGNBD(r, alpha, a, b, fit.log_likelihood)


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")

    @property
    def params(self) -> tuple[float, float, float]:
        return (self.p, self.q, self.gamma)

    @property
    def population_mean(self) -> float:
        """E[M]: the mean transaction value of a customer nothing is known about."""
        return self.p * self.gamma / (self.q - 1)

    def expected_average_value(self, x: npt.ArrayLike, m_x: npt.ArrayLike) -> FloatArray:
        """E[M | x, m_x]: a weighted mean of the population mean and the observed mean."""
        xs = np.asarray(x, dtype=np.float64)
        ms = np.asarray(m_x, dtype=np.float64)
        p, q, g = self.p, self.q, self.gamma
        return np.asarray(p * (g + xs * ms) / (p * xs + q - 1), dtype=np.float64)


def _gamma_gamma_terms(
    params: Sequence[float] | FloatArray, x: FloatArray, m_x: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-buyer log-density of ``m_x`` and its gradient (rows p, q, gamma)."""
    p, q, g = (float(v) for v in params)
    px = p * x
    log_spent = np.log(g + m_x * x)
    at = _by_count(x)  # f(p·x + v), once per distinct count
    digamma_pxq = at(lambda v: digamma(p * v + q), 0.0)
    values = (
        at(lambda v: gammaln(p * v + q), 0.0) - at(lambda v: gammaln(p * v), 0.0)
        - gammaln(q) + q * np.log(g)
        + (px - 1) * np.log(m_x) + px * np.log(x) - (px + q) * log_spent
    )
    gradient = np.stack([
        x * (digamma_pxq - at(lambda v: digamma(p * v), 0.0) + np.log(m_x * x) - log_spent),
        digamma_pxq - digamma(q) + np.log(g) - log_spent,
        q / g - (px + q) / (g + m_x * x),
    ])
    return np.asarray(values, dtype=np.float64), np.asarray(gradient, dtype=np.float64)


def gamma_gamma_log_likelihood(
    params: Sequence[float] | FloatArray, x: FloatArray, m_x: FloatArray
) -> FloatArray:
    """Log-density of each repeat buyer's mean value ``m_x`` over ``x`` transactions."""
    return _gamma_gamma_terms(params, x, m_x)[0]


GAMMA_GAMMA_STARTS: tuple[tuple[float, float, float], ...] = (
    (1.0, 1.0, 1.0),
    (5.0, 3.0, 10.0),
    (2.0, 5.0, 30.0),
)


def fit_gamma_gamma(
    x: npt.ArrayLike,
    m_x: npt.ArrayLike,
    starts: Sequence[Sequence[float]] = GAMMA_GAMMA_STARTS,
) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters on the repeat buyers (x > 0, m_x > 0)."""
    xs = np.asarray(x, dtype=np.float64)
    ms = np.asarray(m_x, dtype=np.float64)
    keep = (xs > 0) & (ms > 0)
    if not keep.any():
        raise ValueError("no repeat buyers with a positive mean value to fit")
    starts = _sampled_start((xs[keep], ms[keep]),
                            lambda c, s: fit_gamma_gamma(c[0], c[1], s).params, starts)
    (gx, gm), weight = _grouped(xs[keep], ms[keep])

    def log_likelihood(params: FloatArray) -> tuple[float, FloatArray]:
        values, gradient = _gamma_gamma_terms(params, gx, gm)
        return float(weight @ values), gradient @ weight

    fit = _maximise(log_likelihood, starts)
    p, q, g = fit.params
    return GammaGamma(p, q, g, fit.log_likelihood)


# ---------------------------------------------------------------------------------------------
# Customer lifetime value
# ---------------------------------------------------------------------------------------------


def predicted_clv(
    transactions_model: BGNBD,
    value_model: GammaGamma,
    rfm: RFM,
    horizon: float,
    discount: float = 0.0,
    step: float = 1.0,
) -> FloatArray:
    """Predicted value of each customer over the next ``horizon`` weeks.

    Expected transactions per step of ``step`` weeks, times the expected transaction value,
    discounted at ``discount`` per step: sum_k (E[Y(k s)] - E[Y((k-1) s)]) E[M] / (1+d)^k.
    """
    if horizon < 0 or step <= 0 or discount <= -1:
        raise ValueError("horizon must be >= 0, step > 0 and discount > -1")
    steps = int(np.ceil(horizon / step - 1e-9))
    ends = np.minimum(np.arange(0, steps + 1, dtype=np.float64) * step, horizon)
    cumulative = transactions_model.expected_purchases(
        ends[:, None], rfm.x[None, :], rfm.t_x[None, :], rfm.T[None, :]
    )
    per_step = np.diff(cumulative, axis=0)
    factors = (1.0 + discount) ** -np.arange(1, steps + 1, dtype=np.float64)
    value = value_model.expected_average_value(rfm.x, rfm.m_x)
    return np.asarray((factors @ per_step) * value, dtype=np.float64)
