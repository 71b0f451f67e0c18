"""The portal's program flows end to end in a real browser against a real server: a member
claims a sale with its invoice file, an operator approves it in the claims queue, and the
member's balance shows the points; an operator rejects a claim with a reason and the member
reads it; a member registers for an event and hides its account from the leaderboards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.settings import get_settings
from tests.support.portal_seed import seed_portal
from tests.ui.conftest import Site, admin_sign_in, portal_sign_in

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def proofs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "proofs"
    monkeypatch.setenv("ALLEGIANCE_PROOF_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def _balance(site: Site, role: str = "dealer_west") -> int:
    with site.db.read() as s:
        return ledger.balance_of(ledger.get_account(s, site.demo.tenant_id,
                                                    site.demo.wallets[role])).available


def _claim(member: Any, site: Site, invoice: str, invoice_file: Path) -> None:
    member.goto(f"{site.url}/portal/claims")
    member.get_by_label("Invoice number").fill(invoice)
    member.get_by_label("Invoice date").fill(
        (clock.now() - timedelta(days=2)).strftime("%Y-%m-%d"))
    member.get_by_label("Seller (who issued the invoice)").fill("Northwind Distribution")
    member.get_by_label("Line 1 product code").fill("CAB-100")
    member.get_by_label("Line 1 product name").fill("Cable drum")
    member.get_by_label("Line 1 quantity").fill("4")
    member.get_by_label("Line 1 unit price").fill("250.00")
    member.get_by_label("Proof (invoice as PDF or image)").set_input_files(str(invoice_file))
    member.get_by_role("button", name="Submit the claim").click()
    member.wait_for_url("**/portal/claims**")
    assert "waits for review" in member.get_by_role("status").inner_text()


def test_an_operator_approves_a_claim_and_the_member_sees_the_points(
        site: Site, browser: Any, tmp_path: Path) -> None:
    invoice_file = tmp_path / "invoice.pdf"
    invoice_file.write_bytes(PDF)
    member = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    operator = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    try:
        portal_sign_in(member, site)
        before = _balance(site)
        wallet = member.locator(f'[data-wallet="{site.demo.wallets["dealer_west"]}"]')
        assert wallet.inner_text() == f"{before:,}"
        _claim(member, site, "NW-2026-0042", invoice_file)
        row = member.get_by_role("row").filter(has_text="NW-2026-0042")
        assert "submitted" in row.inner_text() and "1,000.00 USD" in row.inner_text()
        site.shot(member, "flow-portal-claim-submitted")

        admin_sign_in(operator, site)
        operator.get_by_role("link", name="Claims", exact=True).click()
        queued = operator.get_by_role("row").filter(has_text="NW-2026-0042")
        assert "Acme Electrical Supply" in queued.inner_text()
        assert "CAB-100 × 4" in queued.inner_text()
        site.shot(operator, "flow-admin-claims-queue")
        queued.get_by_role("button", name="Approve NW-2026-0042").click()
        operator.wait_for_url("**/admin/claims**")
        assert "is approved" in operator.get_by_role("status").inner_text()

        after = _balance(site)
        assert after >= before + 1_000  # 1 token per US$1 of the $1,000 invoice (and more)
        member.goto(f"{site.url}/portal/home")
        assert wallet.inner_text() == f"{after:,}"
        member.goto(f"{site.url}/portal/claims")
        member.get_by_role("row").filter(has_text="NW-2026-0042").get_by_role("link").click()
        assert "approved" in member.get_by_role("heading", level=2).first.inner_text()
        site.shot(member, "flow-portal-claim-approved")
    finally:
        member.context.close()
        operator.context.close()


def test_a_rejected_claim_shows_its_reason(site: Site, browser: Any, tmp_path: Path) -> None:
    invoice_file = tmp_path / "scan.pdf"
    invoice_file.write_bytes(PDF)
    member = browser.new_context().new_page()
    operator = browser.new_context().new_page()
    try:
        portal_sign_in(member, site)
        _claim(member, site, "NW-77", invoice_file)
        admin_sign_in(operator, site)
        operator.goto(f"{site.url}/admin/claims")
        operator.get_by_label("Reason to reject NW-77").fill("The invoice is unreadable")
        operator.get_by_role("button", name="Reject NW-77").click()
        assert "is rejected" in operator.get_by_role("status").inner_text()
        member.goto(f"{site.url}/portal/claims")
        row = member.get_by_role("row").filter(has_text="NW-77")
        assert "rejected" in row.inner_text() and "The invoice is unreadable" in row.inner_text()
    finally:
        member.context.close()
        operator.context.close()


def test_a_member_registers_and_opts_out(site: Site, page: Any) -> None:
    seed_portal(site.db, site.demo)
    portal_sign_in(page, site)
    page.get_by_role("link", name="Events", exact=True).click()
    page.get_by_role("button", name="Register for Partner summit").click()
    assert "You are registered." in page.get_by_role("status").inner_text()
    assert "49 of 50 left" in page.get_by_role("row").filter(
        has_text="Partner summit").inner_text()
    page.get_by_role("link", name="Challenges", exact=True).click()
    assert "(you)" in page.get_by_role("table").inner_text()
    page.get_by_role("button", name="Hide my account from the leaderboards").click()
    assert "hidden from the leaderboards" in page.get_by_role("status").inner_text()
    assert "(you)" not in page.get_by_role("table").inner_text()


def test_a_member_claims_co_marketing_with_proof(site: Site, page: Any,
                                                 tmp_path: Path) -> None:
    seed = seed_portal(site.db, site.demo)
    photo = tmp_path / "booth.pdf"
    photo.write_bytes(PDF)
    portal_sign_in(page, site)
    page.get_by_role("link", name="Co-marketing", exact=True).click()
    page.get_by_label("For", exact=True).select_option(seed.preapproved_id)
    page.get_by_label("Actual cost (USD)").fill("600.00")
    page.get_by_label("Invoice number").fill("BOOTH-7")
    page.get_by_label("Proof of performance (PDF or image)").set_input_files(str(photo))
    page.get_by_role("button", name="Claim", exact=True).click()
    assert "for 300.00 waits for review" in page.get_by_role("status").inner_text()
    assert page.locator('[data-figure="claimed-awaiting-payment"]').inner_text() == "300.00 USD"
    row = page.get_by_role("row").filter(has_text="Trade show booth")
    assert "claimed" in row.inner_text()
    with page.expect_download() as download:
        row.get_by_role("link", name="proof").click()
    assert Path(download.value.path()).read_bytes() == PDF
