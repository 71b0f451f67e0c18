"""The portal's program pages: co-marketing funds (figures, pre-approval, claims with proof),
referrals (code, link, sign-ups, pending and payable), member events and courses,
challenges, badges, leaderboards with the opt-out, and the owners' team view."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from allegiance import engagement, mdf
from allegiance.web.security import reading
from tests.support.portal_seed import Seeded, seed_portal, user_earning
from tests.web.conftest import Web
from tests.web.portal_helpers import PDF, landed, portal_user, proof_dir, send, stored

__all__ = ["proof_dir"]


def _mdf_claims(web: Web) -> list[mdf.MdfClaim]:
    with reading(web.db) as s:
        return list(s.scalars(select(mdf.MdfClaim).order_by(mdf.MdfClaim.id)))


def _figure(page: str, name: str) -> str:
    marker = f'data-figure="{name}">'
    start = page.index(marker) + len(marker)
    return page[start:page.index("<", start)]


def test_co_marketing_figures_preapproval_and_claims(web: Web, proof_dir: Path) -> None:
    seed = seed_portal(web.db, web.demo)
    member = web.member()
    page = member.get("/portal/co-marketing").text
    assert "Co-marketing fund" in page
    assert _figure(page, "allocated") == "2,000.00 USD"
    assert _figure(page, "committed") == "400.00 USD"  # 50% of the $800 estimate, held
    assert _figure(page, "remaining") == "1,600.00 USD"
    fund = f"/portal/co-marketing/{seed.fund_id}"
    said = landed(member, send(member, f"{fund}/request",
                               {"activity": "Webinar", "estimated_cost": "500"}))
    assert "waits for pre-approval" in said and "Webinar" in said
    assert "estimated cost must be an amount" in landed(member, send(
        member, f"{fund}/request", {"activity": "Webinar", "estimated_cost": "lots"}))
    # the pre-approved booth: 50% of $600 = $300, under the $400 pre-approved
    said = landed(member, send(member, f"{fund}/claim", {
        "claim_id": seed.preapproved_id, "actual_cost": "600.00", "other_brands": "0",
        "invoice_ref": "BOOTH-1"}, files={"proof": ("booth.pdf", PDF, "application/pdf")}))
    assert "for 300.00 waits for review" in said
    # a new activity with one other brand shown: 25% of $1,000
    said = landed(member, send(member, f"{fund}/claim", {
        "activity": "Flyers", "actual_cost": "1000", "other_brands": "1",
        "invoice_ref": "FLY-9"}, files={"proof": ("flyer.png", PDF, "application/pdf")}))
    assert "for 250.00 waits for review" in said
    assert _figure(said, "claimed-awaiting-payment") == "550.00 USD"
    # the booth's pre-approval stays held at $400 until it is paid (the rest is released then)
    assert _figure(said, "committed") == "650.00 USD"
    assert _figure(said, "remaining") == "1,350.00 USD"
    refused = landed(member, send(member, f"{fund}/claim", {
        "activity": "Radio", "actual_cost": "100", "invoice_ref": "R-1"}))
    assert "choose a proof file" in refused
    assert len(stored(proof_dir)) == 2
    booth = next(c for c in _mdf_claims(web) if c.id == seed.preapproved_id)
    assert (booth.status, booth.amount, booth.invoice_ref) == ("claimed", 30_000, "BOOTH-1")
    assert member.get(f"/portal/co-marketing/claims/{booth.id}/proof").content == PDF
    with web.db.transaction() as s:
        mdf.approve_claim(s, web.tenant_id, booth.id, actor="operator:test")
    paid = member.get("/portal/co-marketing").text
    assert _figure(paid, "paid") == "300.00 USD" and "paid" in paid
    # Bolt & Wire sees its own allocation, none of Acme's requests
    other = web.member(1).get("/portal/co-marketing").text
    assert _figure(other, "allocated") == "1,000.00 USD" and "Webinar" not in other


def test_referral_code_link_and_results(web: Web) -> None:
    seed = seed_portal(web.db, web.demo)
    page = web.member().get("/portal/referrals").text
    assert seed.code in page and f"https://partners.example/join?ref={seed.code}" in page
    assert _figure(page, "signups") == "1" and _figure(page, "pending") == "1,000"
    south = web.member(1)
    assert "Get my referral code" in south.get("/portal/referrals").text
    said = landed(south, send(south, f"/portal/referrals/{seed.plan_id}/code", {}))
    assert "Your referral code is" in said and _figure(said, "signups") == "0"
    viewer = portal_user(web, "kim@acme.example")
    assert "Get my referral code" not in viewer.get("/portal/referrals").text
    assert "may not submit" in landed(viewer, send(
        viewer, f"/portal/referrals/{seed.plan_id}/code", {}))


def test_events_registration_and_courses(web: Web) -> None:
    seed = seed_portal(web.db, web.demo)
    member = web.member()
    page = member.get("/portal/events").text
    assert "Partner summit" in page and "50 of 50 left" in page
    assert "VIP dinner" not in page  # by invitation, not invited
    assert "safety-101" in page and "(mandatory)" in page
    said = landed(member, send(member, f"/portal/events/{seed.summit_id}/register", {}))
    assert "You are registered." in said and "49 of 50 left" in said
    said = landed(member, send(member, f"/portal/events/{seed.summit_id}/cancel", {}))
    assert "Your registration is cancelled." in said and "50 of 50 left" in said
    assert send(member, f"/portal/events/{seed.dinner_id}/register", {}).status_code == 404
    south = web.member(1).get("/portal/events").text
    assert "VIP dinner" in south and "invited" in south


def test_challenges_badges_leaderboard_and_opt_out(web: Web) -> None:
    seed_portal(web.db, web.demo)
    member = web.member()
    page = member.get("/portal/challenges").text
    assert "Three courses" in page and "1 of 3</p>" in page
    assert "Certified" in page and "Bronze" in page and "Top seller" in page
    assert "Acme Electrical Supply <strong>(you)</strong>" in page and "Bolt &amp; Wire Co" in page
    assert "You are <strong>#" in page
    sales = member.get("/portal/challenges?metric=sales&period=all").text
    assert "<td>Bolt &amp; Wire Co" in sales and "<td>Acme Electrical Supply" not in sales
    said = landed(member, send(member, "/portal/leaderboards/opt-out", {"opted_out": "1"}))
    assert "hidden from the leaderboards" in said and "(you)" not in said
    assert "Acme Electrical Supply" not in web.member(1).get("/portal/challenges").text
    rep = portal_user(web, "tom@acme.example")
    assert "Hide my account" not in rep.get("/portal/challenges").text
    assert "only an owner or a manager" in landed(rep, send(
        rep, "/portal/leaderboards/opt-out", {"opted_out": "0"}))
    said = landed(member, send(member, "/portal/leaderboards/opt-out", {"opted_out": "0"}))
    assert "(you)" in said


def test_owners_see_the_team_earnings_and_nobody_else(web: Web) -> None:
    user_earning(web.db, web.demo, "tom@acme.example", 700, 3)
    user_earning(web.db, web.demo, "tom@acme.example", 300, 60)
    user_earning(web.db, web.demo, "luis@acme.example", 50, 10)
    user_earning(web.db, web.demo, "priya@boltwire.example", 999, 1)  # another member's user
    owner = web.member()
    page = owner.get("/portal/team").text
    assert "Tom Reyes" in page and "Luis Ortega" in page and "Kim Baker" in page
    # (not "999" alone: a random id on the page may hold it)
    assert "Priya" not in page and "999 tokens" not in page
    tom = page[page.index("Tom Reyes"):page.index("</tr>", page.index("Tom Reyes"))]
    assert "1,000 tokens" in tom and "700 tokens" in tom  # balance, 30 days; 90 days: 1,000
    assert "SPIFF 3" in page and "SPIFF 60" in page
    branch = web.demo.accounts["branch_sd"]
    only = owner.get(f"/portal/team?account={branch}").text
    assert "Luis Ortega" in only and "Tom Reyes" not in only
    assert 'href="/portal/team"' in owner.get("/portal/home").text
    for email in ("tom@acme.example", "kim@acme.example", "omar@northwind.example"):
        client = portal_user(web, email)
        assert client.get("/portal/team").status_code == 403, email
        assert 'href="/portal/team"' not in client.get("/portal/home").text
    assert owner.get(f"/portal/team?account={web.demo.accounts['dealer_south']}") \
        .status_code == 404


def test_program_pages_without_content_say_so(web: Web) -> None:
    member = web.member()
    assert "No co-marketing fund is open" in member.get("/portal/co-marketing").text
    assert "no referral plan" in member.get("/portal/referrals").text
    assert "No event at the moment." in member.get("/portal/events").text
    page = member.get("/portal/challenges").text
    assert "No challenge at the moment." in page and "No badge in this program." in page
    assert "No claim yet." in member.get("/portal/claims").text
    with reading(web.db) as s:
        assert not list(s.scalars(select(engagement.Badge)))


_ = Seeded
