"""CLV models: the published CDNOW fit of Fader, Hardie & Lee (2005), plus small exact checks."""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from allegiance.analytics import cdnow, charts
from allegiance.analytics.clv import (
    BGNBD,
    RFM,
    GammaGamma,
    _bgnbd_terms,
    _gamma_gamma_terms,
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    predicted_clv,
    rfm_summary,
)


def _cdnow_file() -> Path | None:
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "data" / "cdnow"]
    if env := os.environ.get("ALLEGIANCE_SHARED_DIR"):
        candidates.insert(0, Path(env) / "data" / "cdnow")
    for folder in candidates:
        if (folder / "CDNOW_sample.txt").is_file():
            return folder / "CDNOW_sample.txt"
    return None


CDNOW = _cdnow_file()
needs_cdnow = pytest.mark.skipif(
    CDNOW is None,
    reason="CDNOW_sample.txt not found in ../shared/data/cdnow (set ALLEGIANCE_SHARED_DIR to the "
    "folder holding data/cdnow/)",
)


Fitted = tuple[cdnow.Purchases, RFM, BGNBD, GammaGamma, float]


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    assert CDNOW is not None
    purchases = cdnow.load(CDNOW)
    began = time.perf_counter()
    rfm, bgnbd, gg = cdnow.fit(purchases)
    return purchases, rfm, bgnbd, gg, time.perf_counter() - began


def _close(got: float, paper: float, rel: float = 0.01) -> None:
    assert got == pytest.approx(paper, rel=rel), f"{got} is not within {rel:.0%} of {paper}"


@needs_cdnow
def test_cdnow_calibration_summary(fitted: Fitted) -> None:
    purchases, rfm, *_ = fitted
    assert len(purchases.customers) == 6919
    assert len(rfm) == 2357
    assert int(rfm.x.sum()) == 2457  # repeat transactions in weeks 1-39 (FHL 2005)
    assert int(rfm.repeaters.sum()) == cdnow.PUBLISHED_REPEAT_BUYERS == 946
    # Customer 1: first purchase on 1997-01-01, repeats on 01-18 and 08-02 (FHL's spreadsheet).
    assert (rfm.x[0], round(rfm.t_x[0], 2), round(rfm.T[0], 2)) == (2.0, 30.43, 38.86)


@needs_cdnow
def test_cdnow_bgnbd_reproduces_fader_hardie_lee(fitted: Fitted) -> None:
    _, rfm, bgnbd, _, seconds = fitted
    _close(bgnbd.r, cdnow.PUBLISHED_BGNBD["r"])
    _close(bgnbd.alpha, cdnow.PUBLISHED_BGNBD["alpha"])
    _close(bgnbd.a, cdnow.PUBLISHED_BGNBD["a"])
    _close(bgnbd.b, cdnow.PUBLISHED_BGNBD["b"])
    _close(bgnbd.log_likelihood, cdnow.PUBLISHED_BGNBD_LL)
    # The reported optimum is the likelihood of the reported parameters.
    ll = bgnbd_log_likelihood((bgnbd.r, bgnbd.alpha, bgnbd.a, bgnbd.b), rfm.x, rfm.t_x, rfm.T)
    assert float(ll.sum()) == pytest.approx(bgnbd.log_likelihood, abs=1e-6)
    assert seconds < 5


@needs_cdnow
def test_cdnow_gamma_gamma_reproduces_fader_hardie_lee(fitted: Fitted) -> None:
    _, _, _, gg, _ = fitted
    _close(gg.p, cdnow.PUBLISHED_GAMMA_GAMMA["p"])
    _close(gg.q, cdnow.PUBLISHED_GAMMA_GAMMA["q"])
    _close(gg.gamma, cdnow.PUBLISHED_GAMMA_GAMMA["gamma"])


@needs_cdnow
def test_cdnow_tracking_and_chart(fitted: Fitted, tmp_path: Path) -> None:
    purchases, rfm, bgnbd, _, _ = fitted
    actual = cdnow.actual_tracking(purchases)
    expected = cdnow.expected_tracking(bgnbd, rfm)
    assert len(actual) == len(expected) == 78
    assert actual[38] == 2457  # the calibration ends with week 39
    assert np.all(np.diff(actual) >= 0) and np.all(np.diff(expected) >= 0)
    # The model tracks the cohort: within 3% at the end of calibration, 5% after 78 weeks.
    assert expected[38] == pytest.approx(actual[38], rel=0.03)
    assert expected[77] == pytest.approx(actual[77], rel=0.05)
    out = tmp_path / "tracking.svg"
    assert cdnow.main(["--cdnow", str(CDNOW), "--svg", str(out)]) == 0
    root = ET.fromstring(out.read_text())
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2


# --- small exact checks that need no data file ------------------------------------------------


def test_rfm_counts_one_transaction_per_day_in_weeks() -> None:
    rfm = rfm_summary(
        ["b", "a", "a", "a", "a", "b"],
        ["1997-01-08", "1997-01-01", "1997-01-01", "1997-01-15", "1997-03-01", "1997-01-08"],
        [5.0, 10.0, 2.0, 30.0, 99.0, 7.0],
        "1997-01-29",
    )
    assert rfm.customers.tolist() == ["a", "b"]
    assert rfm.x.tolist() == [1.0, 0.0]  # a: 01-01 (twice, one transaction), 01-15; 03-01 is out
    assert rfm.t_x.tolist() == [2.0, 0.0]
    assert rfm.T.tolist() == [4.0, 3.0]
    assert rfm.m_x.tolist() == [30.0, 0.0]  # the first transaction is not a repeat
    assert rfm.total.tolist() == [42.0, 12.0]


def test_bgnbd_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(7)
    n, horizon = 4000, 52.0
    lam = rng.gamma(0.5, 1 / 2.0, n)  # r = 0.5, alpha = 2
    p = rng.beta(1.0, 4.0, n)  # a = 1, b = 4
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > horizon:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    model = fit_bgnbd(x, t_x, np.full(n, horizon))
    assert model.r == pytest.approx(0.5, rel=0.15)
    assert model.alpha == pytest.approx(2.0, rel=0.25)
    assert model.a == pytest.approx(1.0, rel=0.3)
    assert model.b == pytest.approx(4.0, rel=0.3)


def test_analytic_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 60).astype(float)
    T = rng.uniform(20, 40, 60)
    t_x = np.where(x > 0, rng.uniform(0, 1, 60) * T, 0.0)
    at = np.array([0.3, 4.0, 0.8, 2.5])
    analytic = _bgnbd_terms(at, x, t_x, T)[1].sum(axis=1)
    numeric = approx_fprime(at, lambda p: _bgnbd_terms(p, x, t_x, T)[0].sum(), 1e-7)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-4)
    x = rng.integers(1, 6, 60).astype(float)
    m_x = rng.uniform(5, 50, 60)
    at = np.array([6.0, 3.7, 15.0])
    analytic = _gamma_gamma_terms(at, x, m_x)[1].sum(axis=1)
    numeric = approx_fprime(at, lambda p: _gamma_gamma_terms(p, x, m_x)[0].sum(), 1e-7)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-4)


def test_bgnbd_predictions_behave() -> None:
    m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
    # The worked example of FHL (2005), section 5: E[Y(39) | x=2, t_x=30.43, T=38.86] = 1.226.
    assert m.expected_purchases(39, [2], [30.43], [38.86])[0] == pytest.approx(1.226, abs=5e-4)
    # No repeat purchase: cannot have dropped out yet.
    assert m.p_alive([0], [0], [30])[0] == 1.0
    # A long silence since the last purchase lowers the probability of being alive.
    assert m.p_alive([3], [30], [32])[0] > m.p_alive([3], [5], [32])[0]
    assert m.expected_purchases(0, [2], [10], [20])[0] == 0
    assert m.expected_purchases(52, [5], [30], [31])[0] > m.expected_purchases(52, [1], [2], [31])[0]
    # A customer who just made her first purchase is the unconditional E[X(t)].
    assert m.expected_cumulative(10.0)[()] == pytest.approx(
        m.expected_purchases(10.0, [0.0], [0.0], [0.0])[0]
    )


def test_gamma_gamma_and_clv() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    nu = rng.gamma(4.0, 1 / 20.0, n)  # q = 4, gamma = 20
    x = rng.integers(1, 8, n).astype(float)
    m_x = np.array([rng.gamma(6.0, 1 / v, int(k)).mean() for v, k in zip(nu, x, strict=True)])
    gg = fit_gamma_gamma(x, m_x)
    # p trades off against q and gamma (a flat ridge): check the optimum and what is identified.
    assert gg.log_likelihood >= float(gamma_gamma_log_likelihood((6.0, 4.0, 20.0), x, m_x).sum())
    assert gg.population_mean == pytest.approx(6.0 * 20.0 / 3.0, rel=0.05)
    assert gg.p == pytest.approx(6.0, rel=0.25)
    assert gg.q == pytest.approx(4.0, rel=0.25)
    # The expected value shrinks the observed mean toward the population mean.
    e = gg.expected_average_value([1, 50], [100.0, 100.0])
    assert gg.population_mean < e[0] < e[1] < 100.0

    rfm = rfm_summary(
        ["a", "a", "a", "b", "c", "c"],
        ["2024-01-01", "2024-02-01", "2024-03-01", "2024-01-01", "2024-01-01", "2024-01-10"],
        [50.0, 60.0, 80.0, 20.0, 10.0, 10.0],
        "2024-03-31",
    )
    tx = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
    value = GammaGamma(p=6.25, q=3.74, gamma=15.44)
    undiscounted = predicted_clv(tx, value, rfm, horizon=52)
    expected = tx.expected_purchases(52, rfm.x, rfm.t_x, rfm.T) * value.expected_average_value(
        rfm.x, rfm.m_x
    )
    assert undiscounted == pytest.approx(expected)
    discounted = predicted_clv(tx, value, rfm, horizon=52, discount=0.01)
    assert np.all(discounted < undiscounted) and np.all(discounted > 0)
    assert undiscounted[0] == max(undiscounted)  # the frequent, recent, big spender


def test_chart_is_well_formed_svg() -> None:
    assert charts.nice_ticks(0, 4339) == [0, 1000, 2000, 3000, 4000, 5000]
    assert charts.nice_ticks(1, 78) == [0, 20, 40, 60, 80]
    svg = charts.line_chart(
        [charts.Series("a < b", [0, 1, 2], [0, 1, 4]), charts.Series("c", [0, 2], [1, 3], dashed=True)],
        title="T & t",
        markers=[charts.Marker(1, "m")],
    )
    root = ET.fromstring(svg)  # escaped text, balanced tags
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2
    with pytest.raises(ValueError):
        charts.Series("bad", [1, 2], [1])
