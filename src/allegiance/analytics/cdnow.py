"""The CDNOW check: fit BG/NBD and Gamma-Gamma as Fader, Hardie & Lee (2005) did, draw tracking.

    python -m allegiance.analytics.cdnow --cdnow PATH/CDNOW_sample.txt \
        --svg docs/img/cdnow-tracking.svg

Calibration 1997-01-01 to 1997-09-30 (weeks 1-39), holdout to 1998-06-30 (weeks 40-78); several
purchases on one day are one transaction.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

from allegiance.analytics import charts
from allegiance.analytics.clv import (
    BGNBD,
    RFM,
    FloatArray,
    GammaGamma,
    fit_bgnbd,
    fit_gamma_gamma,
    rfm_summary,
    transactions,
)

START = np.datetime64("1997-01-01", "D")
CALIBRATION_END = np.datetime64("1997-09-30", "D")
CALIBRATION_WEEKS = 39
TRACKING_WEEKS = 78

# Published in Fader, Hardie & Lee (2005): Marketing Science 24(2) and JMR 42(4).
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_BGNBD_LL = -9582.4
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
PUBLISHED_REPEAT_BUYERS = 946


@dataclass(frozen=True)
class Purchases:
    customers: npt.NDArray[np.int64]
    dates: npt.NDArray[np.datetime64]
    amounts: FloatArray


def load(path: Path) -> Purchases:
    """Read ``CDNOW_sample.txt`` (columns: full id, sample id, YYYYMMDD, CDs, dollars)."""
    customers: list[int] = []
    dates: list[str] = []
    amounts: list[float] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(f"{path}:{number}: expected 5 columns, got {len(fields)}")
        day = fields[2]
        customers.append(int(fields[1]))
        dates.append(f"{day[:4]}-{day[4:6]}-{day[6:8]}")
        amounts.append(float(fields[4]))
    return Purchases(
        np.asarray(customers, dtype=np.int64),
        np.asarray(dates, dtype="datetime64[D]"),
        np.asarray(amounts, dtype=np.float64),
    )


def write_import_csv(path: Path, out: Path) -> int:
    """Write ``CDNOW_sample.txt`` as a purchases file for ``allegiance import purchases``:
    one event per row (external id ``cdnow-<row>``), the member number is the sample id,
    amounts in cents, at noon UTC of the purchase day. Returns the rows written."""
    rows = 0
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("external_id", "member_number", "occurred_at", "currency", "amount"))
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            day = fields[2]
            cents = int((Decimal(fields[4]) * 100).to_integral_value(ROUND_HALF_EVEN))
            writer.writerow((f"cdnow-{number}", str(int(fields[1])),
                             f"{day[:4]}-{day[4:6]}-{day[6:8]}T12:00:00+00:00", "USD", cents))
            rows += 1
    return rows


def calibration_summary(purchases: Purchases) -> RFM:
    return rfm_summary(purchases.customers, purchases.dates, purchases.amounts, CALIBRATION_END)


def actual_tracking(purchases: Purchases, weeks: int = TRACKING_WEEKS) -> FloatArray:
    """Cumulative repeat transactions of the cohort at the end of weeks 1..``weeks``."""
    _, cust, day, _ = transactions(purchases.customers, purchases.dates, purchases.amounts)
    is_first = np.ones(len(cust), dtype=bool)
    is_first[1:] = cust[1:] != cust[:-1]
    week = (day[~is_first] - int(START.astype(np.int64))) // 7  # 0-based week of each repeat
    per_week = np.bincount(week[week < weeks], minlength=weeks).astype(np.float64)
    return np.asarray(np.cumsum(per_week), dtype=np.float64)


def expected_tracking(model: BGNBD, rfm: RFM, weeks: int = TRACKING_WEEKS) -> FloatArray:
    """The model's cumulative repeat transactions of the same cohort, weeks 1..``weeks``."""
    offsets = (rfm.first - START).astype(np.int64) / 7.0
    return model.expected_tracking(offsets, np.arange(1, weeks + 1, dtype=np.float64))


def tracking_svg(actual: FloatArray, expected: FloatArray) -> str:
    weeks = list(range(1, len(actual) + 1))
    return charts.line_chart(
        [
            charts.Series("Actual", weeks, actual.tolist()),
            charts.Series("BG/NBD", weeks, expected.tolist(), dashed=True),
        ],
        title="CDNOW: cumulative repeat transactions, actual vs BG/NBD",
        x_label="Week (from 1997-01-01)",
        y_label="Cumulative repeat transactions",
        markers=[charts.Marker(CALIBRATION_WEEKS, "end of calibration")],
    )


def fit(purchases: Purchases) -> tuple[RFM, BGNBD, GammaGamma]:
    rfm = calibration_summary(purchases)
    return rfm, fit_bgnbd(rfm.x, rfm.t_x, rfm.T), fit_gamma_gamma(rfm.x, rfm.m_x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cdnow", type=Path, required=True, help="path to CDNOW_sample.txt")
    parser.add_argument("--svg", type=Path, help="write the tracking chart here")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    purchases = load(args.cdnow)
    rfm, bgnbd, gg = fit(purchases)
    elapsed = time.perf_counter() - began
    print(f"customers {len(rfm)}, repeat transactions {int(rfm.x.sum())}, "
          f"repeat buyers {int(rfm.repeaters.sum())}; fitted in {elapsed:.2f} s")
    got = {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b}
    for name, paper in PUBLISHED_BGNBD.items():
        print(f"BG/NBD {name:6} {got[name]:9.4f}  paper {paper}")
    print(f"BG/NBD LL     {bgnbd.log_likelihood:9.2f}  paper {PUBLISHED_BGNBD_LL}")
    got = {"p": gg.p, "q": gg.q, "gamma": gg.gamma}
    for name, paper in PUBLISHED_GAMMA_GAMMA.items():
        print(f"Gamma-Gamma {name:6} {got[name]:9.4f}  paper {paper}")
    actual = actual_tracking(purchases)
    expected = expected_tracking(bgnbd, rfm)
    for week in (CALIBRATION_WEEKS, TRACKING_WEEKS):
        print(f"week {week}: actual {actual[week - 1]:.0f}, expected {expected[week - 1]:.1f}")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(tracking_svg(actual, expected))
        print(f"wrote {args.svg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
