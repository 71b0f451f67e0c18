"""Purchases and activities recorded late — imported today (the bulk path of
``imports.run``) or sent one by one through the API's path with an ``occurred_at`` last
month — count by the day they happened, in the program's own days, wherever a KPI is about
purchases or activity: ``active`` and ``engaged``, the summaries (``purchase_day``,
``member_month``, ``purchase_member``: retention, purchase gaps, CLV) and the RFM tallies. The
ledger's figures (``issued``, ``earners``, opening and closing) count the points on the day they
were posted, on both paths alike: the ledger's time (``effective_at``), docs/analytics.md. Both
paths give the same KPI series month by month (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select

from allegiance import imports, members
from allegiance.analytics import reports, summaries
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop
from tests.integration.test_imports_property import MEMBERS, bulk_definition, state_of

TODAY = datetime(2026, 3, 10, 15, tzinfo=UTC)
ZONE = "America/New_York"  # UTC−5 in February: a purchase at 02:00 UTC on 1 Feb is 31 Jan
# (member, when, channel, sku, quantity, unit price): last month's purchases, one on the
# program's local day before the UTC one
PURCHASES = [
    ("M1", datetime(2026, 2, 1, 2, tzinfo=UTC), "web", "SKU-1", 2, 1500),
    ("M1", datetime(2026, 2, 14, 18, tzinfo=UTC), "store", "SKU-9", 1, 4000),
    ("M2", datetime(2026, 2, 20, 9, tzinfo=UTC), "web", "SKU-2", 3, 2000),
    ("M3", datetime(2026, 1, 28, 12, tzinfo=UTC), "store", "SKU-1", 1, 900),
]
ACTIVITIES = [("M2", datetime(2026, 2, 21, 4, tzinfo=UTC)),  # New York's 20 February
              ("M3", datetime(2026, 2, 3, 16, tzinfo=UTC))]
MONTHS = [(date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28)),
          (date(2026, 3, 1), date(2026, 3, 10))]


@pytest.fixture
def shops(db: Database) -> Iterator[tuple[Shop, Shop]]:
    with clock.frozen(TODAY):
        made = []
        for _ in range(2):
            shop = Shop(db, bulk_definition() | {
                "program": {**bulk_definition()["program"], "time_zone": ZONE}})
            for m in MEMBERS:
                shop.account(name=m, member_number=m)
            made.append(shop)
        yield made[0], made[1]


def _one_by_one(shop: Shop) -> None:
    for n, (member, at, channel, sku, quantity, price) in enumerate(PURCHASES):
        shop.event(external_id=f"P{n}", source="import", member_number=member,
                   occurred_at=at, channel=channel,
                   lines=[{"sku": sku, "quantity": quantity, "unit_price": price}])
    for n, (member, at) in enumerate(ACTIVITIES):
        shop.event(external_id=f"A{n}", source="import", member_number=member,
                   occurred_at=at, kind="activity", activity_type="course_completed",
                   attributes={"course_id": f"c{n}", "mandatory": False})


def _imported(shop: Shop, folder: Path) -> list[imports.Report]:
    bought, did = folder / "purchases.parquet", folder / "activities.csv"
    pl.DataFrame([[f"P{n}", at.isoformat(), member, channel, sku, str(quantity), str(price)]
                  for n, (member, at, channel, sku, quantity, price) in enumerate(PURCHASES)],
                 schema=dict.fromkeys(["external_id", "occurred_at", "member_number",
                                       "channel", "sku", "line_quantity", "unit_price"],
                                      pl.String), orient="row").write_parquet(bought)
    pl.DataFrame([[f"A{n}", at.isoformat(), member, "course_completed", f"c{n}", "false"]
                  for n, (member, at) in enumerate(ACTIVITIES)],
                 schema=dict.fromkeys(["external_id", "occurred_at", "member_number",
                                       "activity_type", "attributes.course_id",
                                       "attributes.mandatory"], pl.String),
                 orient="row").write_csv(did)
    return [imports.run(shop.db, shop.tenant_id, "main", "purchases", bought),
            imports.run(shop.db, shop.tenant_id, "main", "activities", did,
                        mapping=imports.mapping_from({"types": {"mandatory": "bool"}},
                                                     "activities"))]


def _series(shop: Shop) -> list[dict[str, Any]]:
    out = []
    with shop.db.read() as s:
        for start, end in MONTHS:
            report = reports.run(s, shop.tenant_id, shop.program_id, "kpis",
                                 reports.Options(start=start, end=end))
            out.append({"rows": report.rows, **report.summary})
    return out


def _purchase_summaries(shop: Shop) -> tuple[Any, Any, Any]:
    """The purchase summaries by member number (the ids differ between the two shops)."""
    with shop.db.read() as s:
        _, days, months, per_member = summaries.stored(s, shop.tenant_id)
        assert summaries.recompute(s, shop.tenant_id)[1:] == (days, months, per_member)
        number = {a.id: a.member_number for a in s.scalars(select(members.Account).where(
            members.Account.tenant_id == shop.tenant_id))}
    return (sorted(((number[k[1]], *k[2:]), v) for k, v in days.items()),
            sorted(((number[k[1]], *k[2:]), v) for k, v in months.items()),
            sorted(((number[k[1]], *k[2:]), v) for k, v in per_member.items()))


def test_late_events_count_on_their_own_day_by_either_path(
        shops: tuple[Shop, Shop], tmp_path: Path) -> None:
    by_api, by_import = shops
    with clock.frozen(TODAY):
        _one_by_one(by_api)
        bought, did = _imported(by_import, tmp_path)
        assert (bought.paths.bulk, did.paths.bulk) == (len(PURCHASES), len(ACTIVITIES))
        api, imported = _series(by_api), _series(by_import)
    assert imported == api
    january, february, march = api
    # by the purchase's local day: 02:00 UTC on 1 February is New York's 31 January
    assert [(m["active"], m["engaged"]) for m in api] == [(2, 0), (3, 2), (0, 0)]
    # the ledger's time: the points were posted today (3 earners, none in Jan or Feb)
    assert [m["rows"][0]["earners"] for m in api] == [0, 0, 3]
    assert january["rows"][0]["issued"] == february["rows"][0]["issued"] == 0
    assert march["rows"][0]["issued"] > 0 and march["new_enrolments"] == 3
    summary = _purchase_summaries(by_api)
    assert _purchase_summaries(by_import) == summary
    day = {(m, d) for (m, d, _), _ in summary[0]}
    assert day == {("M1", _ordinal(2026, 1, 31)), ("M1", _ordinal(2026, 2, 14)),
                   ("M2", _ordinal(2026, 2, 20)), ("M3", _ordinal(2026, 1, 28))}
    january_, february_ = 2026 * 12 + 1, 2026 * 12 + 2  # the summaries' month numbers
    assert dict(summary[1]) == {("M1", january_): 1, ("M1", february_): 1,
                                ("M2", february_): 2, ("M3", january_): 1,
                                ("M3", february_): 1}
    tallies = state_of(by_api.db, by_api)["tallies"]
    assert state_of(by_import.db, by_import)["tallies"] == tallies


def _ordinal(year: int, month: int, day: int) -> int:
    """The summaries' day number (days since 1970-01-01)."""
    return (date(year, month, day) - summaries.EPOCH).days
