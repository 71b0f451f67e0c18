"""A member user sees its own account tree and nothing else: every id-taking portal page and
form answers 404 (or 403 for a role) for another member's claim, co-marketing request, fund,
referral plan, event, wallet, orders, team — and for the same kinds of object in another
tenant; an operator's claims queue never reaches another tenant's or program's claim."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from allegiance import claims, engagement, ledger, mdf, members, referrals, tenants
from allegiance.kit import clock
from allegiance.web import proofs
from tests.support.portal_seed import seed_portal
from tests.web.conftest import Web
from tests.web.portal_helpers import PDF, proof_dir, send

__all__ = ["proof_dir"]


@dataclass
class Foreign:
    account: str
    wallet: str
    claim: str
    fund: str
    mdf_claim: str
    plan: str
    event: str


def _line() -> list[dict[str, object]]:
    return [{"sku": "A", "quantity": 1, "unit_price": 10_000}]


def _other_tenant(web: Web) -> Foreign:
    """Another tenant with one object of every kind the portal takes an id of (its proof
    files stored for real)."""
    now = clock.now()
    with web.db.transaction() as s:
        tenant = tenants.create_tenant(s, "Other Co")
        program = tenants.create_program(s, tenant.id, code="partner-rewards",
                                         name="Other rewards", base_currency="USD")
        points = tenants.create_unit(s, tenant.id, program.id, code="tokens", name="Tokens",
                                     kind="points")
        usd = tenants.create_unit(s, tenant.id, program.id, code="usd", name="USD",
                                  kind="money", currency="USD")
        account = members.create_account(s, tenant.id, name="Other dealer", actor="t")
        members.enrol(s, tenant.id, program.id, account.id, actor="t")
        wallet = ledger.wallet(s, tenant.id, program.id, points.id, "account", account.id)
        claim = claims.submit(s, tenant.id, program.id, account_id=account.id,
                              invoice_number="OT-1", invoice_date=now - timedelta(days=1),
                              seller="Other", lines=_line(),
                              proof_ref=proofs.store(tenant.id, io.BytesIO(PDF)), actor="t")
        fund = mdf.create_fund(s, tenant.id, program.id, code="f", name="Other fund",
                               unit_id=usd.id, budget=10_000, period_start=now,
                               period_end=now + timedelta(days=5),
                               claim_deadline=now + timedelta(days=9), actor="t")
        mdf.allocate(s, tenant.id, fund.id, account.id, 5_000, actor="t")
        asked = mdf.request(s, tenant.id, fund.id, account_id=account.id, activity="Ad",
                            estimated_cost=1_000, actor="t")
        plan = referrals.create_plan(s, tenant.id, program.id, code="refer", name="Refer")
        event = engagement.create_event(s, tenant.id, program.id, code="summit",
                                        name="Other summit", starts_at=now + timedelta(days=1),
                                        ends_at=now + timedelta(days=2))
        return Foreign(account.id, wallet.id, claim.id, fund.id, asked.id, plan.id, event.id)


def _count(web: Web, model: type) -> int:
    with web.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_another_members_and_another_tenants_objects_are_not_found(web: Web,
                                                                   proof_dir: Path) -> None:
    seed = seed_portal(web.db, web.demo)
    south = web.demo.accounts["dealer_south"]
    now = clock.now()
    with web.db.transaction() as s:  # Bolt & Wire's own claim and co-marketing request
        their_claim = claims.submit(
            s, web.tenant_id, web.program(), account_id=south, invoice_number="B-1",
            invoice_date=now - timedelta(days=1), seller="Bolt", lines=_line(),
            proof_ref=proofs.store(web.tenant_id, io.BytesIO(PDF)), actor="t").id
        their_request = mdf.request(s, web.tenant_id, seed.fund_id, account_id=south,
                                    activity="Radio", estimated_cost=10_000, actor="t").id
        mdf.preapprove(s, web.tenant_id, their_request, actor="operator:t")
    other = _other_tenant(web)
    grace = web.member()
    counts = {m: _count(web, m) for m in (claims.SalesClaim, mdf.MdfClaim,
                                          referrals.ReferralCode, engagement.Attendee,
                                          engagement.LeaderboardOptOut)}
    files = len(list(proof_dir.rglob("*.pdf")))
    for account in (south, other.account):
        for page in ("claims", "co-marketing", "referrals", "events", "challenges", "team",
                     "orders", "home", "history", "membership"):
            assert grace.get(f"/portal/{page}?account={account}").status_code == 404, page
    for wallet in (web.demo.wallets["dealer_south"], other.wallet):
        assert grace.get(f"/portal/history?wallet={wallet}").status_code == 404
    for claim in (their_claim, other.claim):
        assert grace.get(f"/portal/claims/{claim}").status_code == 404
        assert grace.get(f"/portal/claims/{claim}/proof").status_code == 404
    for request in (their_request, other.mdf_claim):
        assert grace.get(f"/portal/co-marketing/claims/{request}/proof").status_code == 404
    pdf = {"proof": ("p.pdf", PDF, "application/pdf")}
    posts = [
        (f"/portal/co-marketing/{seed.fund_id}/claim",
         {"claim_id": their_request, "actual_cost": "10", "invoice_ref": "X"}, pdf),
        (f"/portal/co-marketing/{seed.fund_id}/request",
         {"account": south, "activity": "X", "estimated_cost": "10"}, None),
        (f"/portal/co-marketing/{other.fund}/request",
         {"activity": "X", "estimated_cost": "10"}, None),
        (f"/portal/co-marketing/{other.fund}/claim",
         {"activity": "X", "actual_cost": "10", "invoice_ref": "X"}, pdf),
        ("/portal/claims", {"account": other.account, "invoice_number": "Z",
                            "invoice_date": now.strftime("%Y-%m-%d"), "seller": "Z",
                            "sku": ["A"], "quantity": ["1"], "unit_price": ["1"]}, pdf),
        (f"/portal/referrals/{seed.plan_id}/code", {"account": south}, None),
        (f"/portal/referrals/{other.plan}/code", {}, None),
        (f"/portal/events/{seed.summit_id}/register", {"account": south}, None),
        (f"/portal/events/{other.event}/register", {}, None),
        ("/portal/leaderboards/opt-out", {"account": south, "opted_out": "1"}, None),
    ]
    for path, data, upload in posts:
        assert send(grace, path, data, files=upload).status_code == 404, (path, data)
    assert counts == {m: _count(web, m) for m in counts}
    assert len(list(proof_dir.rglob("*.pdf"))) == files  # refused uploads are not kept

    operator = web.admin()
    for path in (f"/admin/claims/{other.claim}/proof",):
        assert operator.get(path).status_code == 404
    assert send(operator, f"/admin/claims/{other.claim}/approve", {}).status_code == 404
    page = operator.get("/admin/claims?status=all").text
    assert their_claim in page and other.claim not in page
    with web.db.read() as s:
        assert claims.get_claim(s, other_tenant_id(web, other), other.claim).status \
            == "submitted"


def other_tenant_id(web: Web, other: Foreign) -> str:
    with web.db.read() as s:
        return str(s.scalar(select(members.Account.tenant_id).where(
            members.Account.id == other.account)))


def test_a_claim_of_another_program_is_not_in_the_queue(web: Web) -> None:
    cashback = web.program("dealer-cashback")
    with web.db.transaction() as s:
        row = claims.submit(s, web.tenant_id, cashback,
                            account_id=web.demo.accounts["dealer_west"], invoice_number="C-1",
                            invoice_date=clock.now() - timedelta(days=1), seller="Acme",
                            lines=_line(), proof_ref="https://files.example/c-1.pdf",
                            actor="t")
        claim_id = row.id
    operator = web.admin()  # looking at the partner-rewards program
    assert claim_id not in operator.get("/admin/claims?status=all").text
    assert send(operator, f"/admin/claims/{claim_id}/reject",
                {"reason": "x"}).status_code == 404
    member = web.member()  # the member sees it once it switches to that program
    assert claim_id not in member.get("/portal/claims").text
    send(member, "/portal/switch", {"program_id": cashback, "back": "/portal/claims"})
    assert claim_id in member.get("/portal/claims").text
    assert member.get(f"/portal/claims/{claim_id}").status_code == 200
