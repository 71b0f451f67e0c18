"""Pure parts of the reports: CSV, JSON values, periods and the bar chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from allegiance.analytics import charts, render
from allegiance.analytics.common import (
    Report,
    ReportInvalid,
    add_months,
    decimal_text,
    instant,
    jsonable,
    months_between,
    period,
)


def test_values_in_json_and_csv() -> None:
    assert decimal_text(Decimal("0.4000000000")) == "0.40"
    assert decimal_text(Decimal("12")) == "12.00"
    assert decimal_text(Decimal("0.0012300")) == "0.00123"
    assert jsonable({"a": [Decimal("1.50"), date(2026, 1, 2), float("nan"), 1 / 3]}) == {
        "a": ["1.50", "2026-01-02", None, 0.333333]}
    report = Report("targets", "prg", "T", ["market", "target", "value"],
                    [{"market": 'A "quoted", market', "target": None, "value": Decimal("2.5")}])
    assert render.to_csv(report) == 'market,target,value\n"A ""quoted"", market",,2.50\n'


def test_periods_are_half_open_days() -> None:
    now = datetime(2026, 3, 5, 10, tzinfo=UTC)
    span = period("2026-01-01", "2026-01-31", now)
    assert (span.start, span.end) == (datetime(2026, 1, 1, tzinfo=UTC),
                                      datetime(2026, 2, 1, tzinfo=UTC))
    assert period(None, None, now).days == 365
    with pytest.raises(ReportInvalid):
        period("2026-02-01", "2026-01-01", now)
    with pytest.raises(ReportInvalid):
        instant("31/01/2026")
    assert add_months(datetime(2026, 11, 20, tzinfo=UTC), 3) == datetime(2027, 2, 1, tzinfo=UTC)
    assert months_between(datetime(2025, 11, 30, tzinfo=UTC),
                          datetime(2026, 2, 1, tzinfo=UTC)) == 3


def test_bar_chart_is_valid_svg_with_escaped_labels() -> None:
    svg = charts.bar_chart(["<a>", "b"], [("one & two", [3.0, -1.0]), ("three", [2.0, 5.0])],
                           title="Bars & more", y_label="units")
    root = ET.fromstring(svg)
    rects = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(rects) == 1 + 4 + 2  # background, four bars, two legend keys
    assert "&lt;a&gt;" in svg and "Bars &amp; more" in svg
    with pytest.raises(ValueError):
        charts.bar_chart(["a"], [("s", [1.0, 2.0])], title="t")


def test_a_report_without_rows_has_no_chart() -> None:
    with pytest.raises(ReportInvalid):
        render.chart_of(Report("nps", "prg", "NPS", ["segment"], []))
