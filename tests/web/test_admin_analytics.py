"""The admin's analytics pages show the reports of ``allegiance.analytics`` (the same numbers
as the API and the CLI), each with its SVG chart."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from allegiance import events
from allegiance.analytics.reports import Options, run
from allegiance.demo import DemoResult
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.ids import new_id
from allegiance.kit.settings import get_settings
from allegiance.web.analytics_view import text
from tests.web.conftest import Web, post


def words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", html, flags=re.S))
                    .split())


def store_events(db: Database, tenant_id: str, program_id: str,
                 rows: list[dict[str, Any]]) -> None:
    """Processed events as the bulk import stores them (the reports read events)."""
    values = []
    for row in rows:
        values.append({
            "tenant_id": tenant_id, "id": new_id("evt"), "program_id": program_id,
            "kind": row.get("kind", "purchase"), "activity_type": row.get("activity_type"),
            "source": "test", "external_id": new_id("ext"), "reported_by": "operator",
            "reporter_account_id": None, "account_id": row["account_id"], "match_key": {},
            "user_id": None, "occurred_at": row["at"], "currency": "USD",
            "amount": row.get("amount", 0), "quantity": 0, "returned_amount": 0,
            "channel": None, "attributes": row.get("attributes", {}), "status": "processed",
            "reason": None, "original_event_id": None, "version": None,
            "created_at": row["at"], "processed_at": row["at"]})
    with db.transaction() as s:
        s.execute(insert(events.Event), values)


def seed(web: Web) -> None:
    seed_events(web.db, web.demo)


def seed_events(db: Database, demo: DemoResult) -> None:
    """Repeat purchases of the four demo members over a year, and NPS answers."""
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for n, role in enumerate(("distributor", "dealer_west", "dealer_south", "branch_sd")):
        for k in range(2 + n * 2):
            rows.append({"account_id": demo.accounts[role], "amount": 10_000 * (n + 1),
                         "at": now - timedelta(days=300 - 37 * k - 5 * n)})
        rows.append({"account_id": demo.accounts[role], "kind": "activity",
                     "activity_type": "nps", "attributes": {"score": (10, 9, 6, 8)[n]},
                     "at": now - timedelta(days=3)})
    program = next(p.id for p in demo.programs if p.code == "partner-rewards")
    store_events(db, demo.tenant_id, program, rows)


def report(web: Web, kind: str, **options: Any) -> Any:
    with web.db.read() as s:
        return run(s, web.tenant_id, web.program(), kind, Options(**options))


def test_every_page_shows_its_report_and_chart(web: Web) -> None:
    seed(web)
    client = web.admin("read_only")  # every role may read the analytics
    assert client.get("/admin/analytics", follow_redirects=False).headers[
        "location"] == "/admin/analytics/kpis"
    for page in ("kpis", "liability", "breakage", "retention", "clv", "uplift", "nps"):
        html = client.get(f"/admin/analytics/{page}").text
        assert "Cannot compute" not in html, page
        assert "<svg" in html, page
    kpis = words(client.get("/admin/analytics/kpis").text)
    expected = report(web, "kpis")
    row = expected.rows[0]
    assert f"Enrolled {expected.summary['enrolled']}" in kpis
    assert f"tokens {row['opening']:,} {row['issued']:,} {row['redeemed']:,}" in kpis
    liability = words(client.get("/admin/analytics/liability").text)
    assert "tokens points 0.01 42,500 425.00 0 3,000" in liability  # pending apart
    assert "Reconciled" in liability and "yes" in liability
    # by tier and age in whole days: the 12,000 earned 90 days ago and the 8,000 of 60 days
    # ago, less the 2,500 redeemed (first in, first out)
    assert "silver 31-90 17,500 175.00" in liability
    breakage = words(client.get("/admin/analytics/breakage").text)
    assert "Liability forecast" in breakage and "Breakage by issue-month cohort" in breakage
    nps = words(client.get("/admin/analytics/nps").text)
    assert "Answers 4 Promoters 2 Passives 1 Detractors 1 NPS 25.00" in nps


def test_clv_parameters_and_top_members(web: Web) -> None:
    seed(web)
    html = client_page(web, "/admin/analytics/clv")
    expected = report(web, "clv", limit=25)
    for name in ("r", "alpha", "a", "b"):
        assert text(expected.summary["bgnbd"][name], name) in html
    for name in ("p", "q", "gamma"):
        assert text(expected.summary["gamma_gamma"][name], name) in html
    top = expected.rows[0]
    assert "Acme Electrical" in html or "Bolt" in html or "Northwind" in html
    assert text(top["expected_value"], "expected_value") in html


def client_page(web: Web, path: str) -> str:
    return words(web.admin().get(path).text)


def test_parameters_and_refusals(web: Web) -> None:
    client = web.admin()
    html = words(client.get("/admin/analytics/clv").text)
    assert "Cannot compute this report: the program has no purchases to fit" in html
    bad = words(client.get("/admin/analytics/kpis?from=2026-02-30").text)
    assert "Cannot compute this report" in bad and "from must be an ISO date" in bad
    assert client.get("/admin/analytics/planets").status_code == 404
    # Dates choose the period: nothing was issued in 2020.
    old = words(client.get("/admin/analytics/kpis?from=2020-01-01&to=2020-12-31").text)
    assert "tokens 0 0 0 0" in old


def nps_answer(web: Web, role: str, score: int) -> None:
    store_events(web.db, web.tenant_id, web.program(), [{
        "account_id": web.demo.accounts[role], "kind": "activity", "activity_type": "nps",
        "attributes": {"score": score}, "at": clock.now() - timedelta(days=1)}])


def test_a_page_shows_its_stored_copy_until_refreshed(web: Web) -> None:
    seed(web)
    client = web.admin("read_only")
    first = words(client.get("/admin/analytics/nps").text)
    assert "NPS 25.00" in first and "Computed " in first and "Refresh now" in first
    nps_answer(web, "dealer_west", 0)  # a promoter's latest answer makes her a detractor
    # Within ALLEGIANCE_REPORT_MAX_AGE_SECONDS the page shows the copy it stored…
    assert "NPS 25.00" in words(client.get("/admin/analytics/nps").text)
    # …and "Refresh now" recomputes it on the spot.
    response = post(client, "/admin/analytics/nps/refresh", page="/admin/analytics/nps")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/admin/analytics/nps"  # type: ignore[attr-defined]
    after = words(client.get("/admin/analytics/nps").text)
    assert "Promoters 1 Passives 1 Detractors 2 NPS -25.00" in after
    assert "Recomputed in" in after


def test_a_copy_older_than_the_max_age_is_recomputed_after_the_response(
        web: Web, monkeypatch: Any) -> None:
    seed(web)
    client = web.admin()
    assert "NPS 25.00" in words(client.get("/admin/analytics/nps").text)
    nps_answer(web, "dealer_south", 10)  # a detractor becomes a promoter
    monkeypatch.setattr(get_settings(), "report_max_age_seconds", -1)
    # The stale copy is shown at once; the recomputation runs after the response…
    assert "NPS 25.00" in words(client.get("/admin/analytics/nps").text)
    # …so the next view has it.
    assert "Promoters 3 Passives 1 Detractors 0 NPS 75.00" in words(
        client.get("/admin/analytics/nps").text)


def test_refresh_keeps_the_page_parameters_and_needs_a_token(web: Web) -> None:
    seed(web)
    client = web.admin()
    page = "/admin/analytics/kpis?from=2020-01-01&to=2020-12-31"
    assert "tokens 0 0 0 0" in words(client.get(page).text)
    response = post(client, "/admin/analytics/kpis/refresh?from=2020-01-01&to=2020-12-31",
                    page=page)
    assert response.headers["location"] == page  # type: ignore[attr-defined]
    refused = client.post("/admin/analytics/kpis/refresh", data={}, follow_redirects=False)
    assert refused.status_code in (400, 403)
    bad = post(client, "/admin/analytics/kpis/refresh?from=2026-02-30",
               page="/admin/analytics/kpis")
    assert "from must be an ISO date" in words(client.get(
        bad.headers["location"]).text)  # type: ignore[attr-defined]
