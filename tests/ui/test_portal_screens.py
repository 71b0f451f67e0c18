"""Every page of the portal's programs (and the admin claims queue) opens in a real browser,
on a desktop and on a phone-sized screen without sideways scrolling of the page; a
screenshot of each is saved to tests/ui/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from allegiance import claims
from allegiance.kit import clock
from allegiance.kit.settings import get_settings
from allegiance.web.security import reading
from tests.support.portal_seed import seed_portal
from tests.ui.conftest import Site, admin_sign_in, portal_sign_in

PAGES = ("claims", "co-marketing", "referrals", "events", "challenges", "team")


@pytest.fixture(autouse=True)
def proofs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ALLEGIANCE_PROOF_DIR", str(tmp_path / "proofs"))
    get_settings.cache_clear()
    yield tmp_path / "proofs"
    get_settings.cache_clear()


def add_claims(site: Site) -> str:
    """A submitted and a rejected claim of Acme (the second one's id)."""
    with site.db.transaction() as s:
        program = next(p.id for p in site.demo.programs if p.code == "partner-rewards")
        made = []
        for number in ("INV-1001", "INV-1002"):
            made.append(claims.submit(
                s, site.demo.tenant_id, program, account_id=site.demo.accounts["dealer_west"],
                invoice_number=number, invoice_date=clock.now() - timedelta(days=3),
                seller="Northwind Distribution", proof_ref="https://files.example/x.pdf",
                lines=[{"sku": "CAB-100", "name": "Cable drum", "quantity": 2,
                        "unit_price": 12_500}], actor="test").id)
        claims.reject(s, site.demo.tenant_id, made[1], actor="operator:test",
                      reason="The invoice date is missing")
    return made[1]


def _fits(page: Any) -> bool:
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"))


def test_portal_program_pages(site: Site, browser: Any) -> None:
    seed_portal(site.db, site.demo)
    rejected = add_claims(site)
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        try:
            portal_sign_in(page, site)
            for name in PAGES:
                page.goto(f"{site.url}/portal/{name}")
                site.shot(page, f"portal-{name}{suffix}")
                assert page.locator("h1").count() == 1, name
                assert _fits(page), f"{name} scrolls sideways at {width}px"
            page.goto(f"{site.url}/portal/claims/{rejected}")
            assert "The invoice date is missing" in page.locator("main").inner_text()
            site.shot(page, f"portal-claim{suffix}")
        finally:
            page.context.close()


def test_admin_claims_queue(site: Site, page: Any) -> None:
    add_claims(site)
    admin_sign_in(page, site)
    page.goto(f"{site.url}/admin/claims")
    assert page.get_by_role("row").filter(has_text="INV-1001").count() == 1
    site.shot(page, "admin-claims")
    page.goto(f"{site.url}/admin/claims?status=all")
    site.shot(page, "admin-claims-all")
    with reading(site.db) as s:
        assert len(list(s.scalars(claims.SalesClaim.__table__.select()))) == 2


def test_keyboard_focus_is_visible_on_the_claim_form(site: Site, page: Any) -> None:
    """Tabbing through the claims page: every control reached shows the focus outline."""
    portal_sign_in(page, site)
    page.goto(f"{site.url}/portal/claims")
    reached = set()
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => { const e = document.activeElement;
            const s = getComputedStyle(e);
            return [e.tagName + '#' + (e.id || e.name || e.textContent.trim().slice(0, 20)),
                    s.outlineStyle, parseFloat(s.outlineWidth)]; }""")
        name, style, width = focused
        if name.startswith("BODY") or "INPUT#proof" in reached:
            break
        assert style != "none" and width >= 2, f"{name} has no visible focus"
        reached.add(name)
    assert {"INPUT#invoice_number", "INPUT#invoice_date", "INPUT#proof"} <= reached
