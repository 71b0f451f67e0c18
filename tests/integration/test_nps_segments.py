"""NPS per segment of the program (campaigns' segments): the answers of the accounts that are
members of each segment when the report is made, next to the overall figure and the old
breakdown by the account attribute ``segment`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from allegiance import campaigns, engagement, members
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop, definition

NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        doc = definition()
        doc["member_attributes"] = {"kind": "str"}
        yield Shop(db, doc)


def enrolled(shop: Shop, **kw: Any) -> str:
    acc = shop.account(**kw)
    with shop.db.transaction() as s:
        members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
    return acc


def segment(shop: Shop, code: str, condition: str) -> str:
    with shop.db.transaction() as s:
        seg = campaigns.create_segment(s, shop.tenant_id, shop.program_id, code=code,
                                       name=code, condition=condition)
        campaigns.refresh_segment(s, shop.tenant_id, seg.id)
        return seg.id


def figures(report: engagement.NpsReport) -> dict[str, tuple[int, int | None]]:
    return {code: (r.responses, r.score) for code, r in report.by_segment.items()}


def test_nps_per_program_segment_follows_membership_at_report_time(shop: Shop) -> None:
    ann = enrolled(shop, name="Ann", attributes={"kind": "retailer"})
    bob = enrolled(shop, name="Bob", attributes={"kind": "retailer"})
    cy = enrolled(shop, name="Cy", attributes={"kind": "distributor", "segment": "gold"})
    retail = segment(shop, "retail", 'member.attributes.kind == "retailer"')
    trade = segment(shop, "trade", 'member.attributes.kind == "distributor"')
    segment(shop, "japan", 'member.country == "JP"')
    with shop.db.transaction() as s:
        survey = engagement.create_survey(
            s, shop.tenant_id, shop.program_id, code="q4", name="Q4",
            questions=[{"code": "nps", "text": "Recommend?", "kind": "nps"}]).id
    for acc, score in ((ann, 10), (bob, 3), (cy, 9)):
        with shop.db.transaction() as s:
            engagement.submit(s, shop.tenant_id, survey, acc, {"nps": score}, actor="test")
    with shop.db.read() as s:
        report = engagement.nps_report(s, shop.tenant_id, shop.program_id)
    assert (report.overall.responses, report.overall.score) == (3, 33)
    assert figures(report) == {"japan": (0, None), "retail": (2, 0), "trade": (1, 100)}
    assert report.segment_ids == {"retail": retail, "trade": trade,
                                  "japan": report.segment_ids["japan"]}
    assert {k: v.responses for k, v in report.by_segment_attribute.items()} == {
        "gold": 1, "none": 2}
    # Bob becomes a distributor: his answer now counts for trade, no longer for retail
    with shop.db.transaction() as s:
        members.update_account(s, shop.tenant_id, bob,
                               {"attributes": {"kind": "distributor"}}, actor="test")
        campaigns.refresh_segment(s, shop.tenant_id, retail)
        campaigns.refresh_segment(s, shop.tenant_id, trade)
    with shop.db.read() as s:
        report = engagement.nps_report(s, shop.tenant_id, shop.program_id, survey)
    assert figures(report) == {"japan": (0, None), "retail": (1, 100), "trade": (2, 0)}
    assert (report.overall.responses, report.overall.score) == (3, 33)
