"""axe-core (4.10, vendored in tests/ui/vendor, MPL-2.0) on every main page of both apps:
no critical or serious violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ui.conftest import Site, admin_sign_in, portal_sign_in

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()


def _violations(page: Any) -> list[str]:
    page.evaluate(AXE)  # run by the DevTools protocol, not an inline script: CSP stays on
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core" and result["passes"]
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            f"{[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("critical", "serious")]


def test_admin_pages_have_no_serious_violations(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/admin/sign-in")
    problems = {"sign-in": _violations(page)}
    admin_sign_in(page, site)
    for name in ("dashboard", "members", "redemptions", "requests", "adjustments", "catalogue",
                 "designer", "operators",
                 f"members/{site.demo.accounts['dealer_west']}"):
        page.goto(f"{site.url}/admin/{name}")
        problems[name] = _violations(page)
    assert not any(problems.values()), problems


def test_portal_pages_have_no_serious_violations(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/portal/sign-in")
    problems = {"sign-in": _violations(page)}
    portal_sign_in(page, site)
    for name in ("home", "history", "catalogue", "orders", "academy", "requests"):
        page.goto(f"{site.url}/portal/{name}")
        problems[name] = _violations(page)
    assert not any(problems.values()), problems


def test_portal_program_pages_and_the_claims_queue_have_no_serious_violations(
        site: Site, page: Any) -> None:
    from tests.support.portal_seed import seed_portal
    from tests.ui.test_portal_screens import add_claims

    seed_portal(site.db, site.demo)
    claim = add_claims(site)
    portal_sign_in(page, site)
    problems = {}
    for name in ("claims", f"claims/{claim}", "co-marketing", "referrals", "events",
                 "challenges", "team"):
        page.goto(f"{site.url}/portal/{name}")
        problems[name] = _violations(page)
    admin_sign_in(page, site)
    for name in ("claims", "claims?status=all"):
        page.goto(f"{site.url}/admin/{name}")
        problems[f"admin/{name}"] = _violations(page)
    assert not any(problems.values()), problems
