"""Every main page of both apps opens in a real browser; a screenshot of each is saved."""

from __future__ import annotations

from typing import Any

from tests.ui.conftest import Site, admin_sign_in, portal_sign_in

ADMIN_PAGES = ("dashboard", "members", "redemptions", "adjustments", "catalogue", "designer",
               "operators")
PORTAL_PAGES = ("home", "history", "catalogue", "orders")


def test_admin_pages(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/admin/sign-in")
    site.shot(page, "admin-sign-in")
    admin_sign_in(page, site)
    for name in ADMIN_PAGES:
        page.goto(f"{site.url}/admin/{name}")
        assert page.locator("h1").count() == 1
        site.shot(page, f"admin-{name}")
    page.goto(f"{site.url}/admin/members/{site.demo.accounts['dealer_west']}")
    page.get_by_role("heading", name="Acme Electrical Supply").wait_for()
    site.shot(page, "admin-member-360")


def test_portal_pages(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/portal/sign-in")
    site.shot(page, "portal-sign-in")
    portal_sign_in(page, site)
    for name in PORTAL_PAGES:
        page.goto(f"{site.url}/portal/{name}")
        assert page.locator("h1").count() == 1
        site.shot(page, f"portal-{name}")
