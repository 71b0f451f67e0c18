"""The admin's queues, imports and analytics in a real browser: a screenshot of each page,
axe-core finds no serious violation, an operator decides applications and co-marketing
requests, and an upload's progress updates itself (htmx polling) until its error report can
be downloaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allegiance import mdf, members
from allegiance.imports import jobs
from allegiance.kit import clock
from allegiance.kit.settings import get_settings
from tests.ui.conftest import Site, admin_sign_in
from tests.ui.test_accessibility import _violations
from tests.web.admin_support import seed_queues
from tests.web.test_admin_analytics import seed_events

PAGES = ("dashboard", "applications", "co-marketing", "imports", "analytics/kpis",
         "analytics/liability", "analytics/breakage", "analytics/retention", "analytics/clv",
         "analytics/uplift", "analytics/nps", "audit")


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ALLEGIANCE_IMPORT_DIR", str(tmp_path / "imports"))
    get_settings.cache_clear()
    yield tmp_path / "imports"
    get_settings.cache_clear()


def test_screens_and_accessibility(site: Site, page: Any) -> None:
    seed_queues(site.db, site.demo)
    seed_events(site.db, site.demo)  # purchases and NPS answers for CLV, retention, NPS
    admin_sign_in(page, site)
    problems = {}
    for name in PAGES:
        page.goto(f"{site.url}/admin/{name}")
        assert page.locator("h1").count() == 1, name
        site.shot(page, f"admin-{name.replace('/', '-')}")
        problems[name] = _violations(page)
    page.goto(f"{site.url}/admin/members/{site.demo.accounts['dealer_south']}")
    page.get_by_role("heading", name="Co-marketing").wait_for()
    site.shot(page, "admin-member-360-south")
    problems["member-360"] = _violations(page)
    assert not any(problems.values()), problems


def test_operator_decides_applications_and_co_marketing(site: Site, page: Any) -> None:
    queues = seed_queues(site.db, site.demo)
    admin_sign_in(page, site)
    page.get_by_role("link", name="Applications", exact=True).click()
    page.get_by_label("Select Delta Solar Installers").check()
    page.get_by_label("Select Ohm Sweet Ohm").check()
    page.get_by_label("With the ticked applications").select_option("approve")
    page.get_by_role("button", name="Apply to ticked").click()
    assert "2 application(s) done." in page.get_by_role("status").inner_text()
    row = page.get_by_role("row").filter(has_text="Current Electric")
    row.get_by_label("Reason to reject Current Electric").fill("not an installer")
    row.get_by_role("button", name="Reject").click()
    assert "is rejected" in page.get_by_role("status").inner_text()
    with site.db.read() as s:
        statuses = {members.get_enrolment(s, site.demo.tenant_id, i).status
                    for i in queues.applications.values()}
    assert statuses == {"active", "rejected"}

    page.get_by_role("link", name="Co-marketing", exact=True).click()
    request = page.get_by_role("row").filter(has_text="Trade show booth")
    assert "600.00 USD" in request.inner_text()  # 50% of the US$1,200 estimate
    request.get_by_label(f"Pre-approved amount for {queues.requests['dealer_west']}").fill(
        "550")
    request.get_by_role("button", name="Pre-approve").click()
    assert "is pre-approved" in page.get_by_role("status").inner_text()
    page.get_by_role("row").filter(has_text="Newspaper ad").get_by_role(
        "button", name="Approve and pay").click()
    assert "is paid" in page.get_by_role("status").inner_text()
    site.shot(page, "flow-admin-co-marketing-decided")
    with site.db.read() as s:
        assert mdf.get_claim(s, site.demo.tenant_id,
                             queues.requests["dealer_west"]).preapproved_amount == 55_000
        assert mdf.get_claim(s, site.demo.tenant_id, queues.claim_id).status == "paid"


def test_upload_progress_and_error_report(site: Site, page: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLEGIANCE_IMPORT_WORKER", "none")
    get_settings.cache_clear()
    day = clock.now().isoformat()  # after the demo's definition came into force
    rows = [f"S{n},{day},R-2001,{1000 + n},USD" for n in range(1, 40)]
    rows.insert(5, f"BAD,{day},R-2001,plenty,USD")
    file = tmp_path / "march-sales.csv"
    file.write_text("external_id,occurred_at,member_number,amount,currency\n"
                    + "\n".join(rows) + "\n")
    admin_sign_in(page, site)
    page.goto(f"{site.url}/admin/imports")
    page.get_by_label("File", exact=True).set_input_files(str(file))
    page.get_by_label("It holds", exact=True).select_option("purchases")
    page.get_by_label("Source", exact=True).fill("erp")
    page.get_by_label("Amount decimals").fill("0")  # this file's amounts are in cents
    page.get_by_role("button", name="Upload and import").click()
    assert "march-sales.csv is queued" in page.get_by_role("status").inner_text()
    card = page.locator("article.import-job").first
    card.locator(".badge.queued").wait_for()
    # The job runs now (no worker thread here); only htmx polling can bring the page the
    # finished card, without any reload.
    assert jobs.run_pending(site.db) == {"jobs_done": 1, "jobs_failed": 0}
    card.locator(".badge.done").wait_for(timeout=30_000)
    card = page.locator("article.import-job").first
    assert "40 of 40 rows (100%)" in " ".join(card.inner_text().split())
    site.shot(page, "flow-admin-import-done")
    with page.expect_download() as download:
        card.get_by_role("link", name="Download the error report (CSV)").click()
    report = Path(download.value.path()).read_text()
    assert "6,amount,plenty" in report
