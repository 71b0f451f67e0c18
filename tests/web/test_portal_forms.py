"""Every form of the portal's program pages and of the claims queue needs the session's CSRF
token, and their pages run a bounded number of queries."""

from __future__ import annotations

from fastapi.routing import APIRoute

from allegiance.web import (
    admin_claims,
    portal_claims,
    portal_engagement,
    portal_mdf,
    portal_referrals,
    portal_team,
)
from tests.support.portal_seed import seed_portal
from tests.web.conftest import Web
from tests.web.portal_helpers import PDF, proof_dir
from tests.web.test_page_cost import MAX_QUERIES, counting

__all__ = ["proof_dir"]


def _post_routes() -> list[str]:
    routers = [("/admin", admin_claims.router)] + [("/portal", m.router) for m in (
        portal_claims, portal_mdf, portal_referrals, portal_engagement, portal_team)]
    return [prefix + route.path for prefix, router in routers for route in router.routes
            if isinstance(route, APIRoute) and "POST" in route.methods]


def test_every_form_needs_the_csrf_token(web: Web) -> None:
    seed = seed_portal(web.db, web.demo)
    admin, member = web.admin(), web.member()
    routes = _post_routes()
    assert len(routes) >= 8
    values = {"claim_id": "x", "action": "register", "fund_id": seed.fund_id,
              "plan_id": seed.plan_id, "member_event_id": seed.summit_id}
    for path in routes:
        concrete = path
        for name, value in values.items():
            concrete = concrete.replace("{" + name + "}", value)
        client = admin if path.startswith("/admin") else member
        upload = {"proof": ("p.pdf", PDF, "application/pdf")}
        missing = client.post(concrete, data={"reason": "r"}, files=upload,
                              follow_redirects=False)
        forged = client.post(concrete, data={"reason": "r", "csrf_token": "forged"},
                             files=upload, follow_redirects=False)
        assert missing.status_code == 403 and forged.status_code == 403, path


def test_program_pages_run_a_bounded_number_of_queries(web: Web) -> None:
    seed_portal(web.db, web.demo)
    admin, member = web.admin(), web.member()
    pages = [(admin, "/admin/claims"), (admin, "/admin/claims?status=all&overdue=1&q=a")]
    pages += [(member, f"/portal/{p}") for p in (
        "claims", "co-marketing", "referrals", "events", "challenges", "team")]
    for client, path in pages:
        client.get(path)  # a first visit may record the session's last use
        with counting(web) as seen:
            assert client.get(path).status_code == 200
        assert len(seen) <= MAX_QUERIES, (path, len(seen))
