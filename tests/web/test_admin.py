"""The admin app's pages and actions, through the same services as the API."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from allegiance import audit, ledger, members, rewards, tenants
from allegiance.kit.models import OutboxMessage
from tests.web.conftest import Web, csrf_of, post


def _balance(web: Web, wallet_id: str) -> int:
    with web.db.read() as s:
        return ledger.balance_of(ledger.get_account(s, web.tenant_id, wallet_id)).posted


def test_dashboard_shows_the_key_figures(web: Web) -> None:
    page = web.admin().get("/admin/dashboard").text
    # Demo, last 365 days (the analytics KPI report): 5,000 tokens held before (the welcome
    # bonus of 26 months ago), 46,000 issued, 8,500 redeemed (18.5%), 42,500 outstanding;
    # 16.7% of the 51,000 ever issued were redeemed.
    for figure in ("5,000", "46,000", "8,500", "42,500", "18.5%", "16.7%"):
        assert figure in page
    assert "Issued and redeemed by month" in page and "Enrolment applications" in page


def test_member_search_and_pages(web: Web) -> None:
    with web.db.transaction() as s:
        for n in range(55):
            members.create_account(s, web.tenant_id, name=f"Filler {n:02d}", actor="test")
    client = web.admin()
    first = client.get("/admin/members").text
    assert first.count('href="/admin/members/acc_') == 50
    more = re.search(r'href="(/admin/members\?cursor=[^"]+)"', first)
    assert more
    assert client.get(more.group(1).replace("&amp;", "&")).text.count(
        'href="/admin/members/acc_') == 9
    found = client.get("/admin/members?q=acme").text
    assert "Acme Electrical Supply" in found and "Bolt &amp; Wire" not in found


def test_member_360_adjust_with_a_reason(web: Web) -> None:
    client = web.admin("finance")
    account = web.demo.accounts["dealer_west"]
    wallet = web.demo.wallets["dealer_west"]
    before = _balance(web, wallet)
    page = client.get(f"/admin/members/{account}").text
    for section in ("Wallets", "History", "Users", "Tier", "Redemptions", "Audit trail"):
        assert section in page
    response: Any = post(client, f"/admin/members/{account}/adjust",
                         {"wallet_id": wallet, "amount": "250", "reason": "goodwill"})
    assert response.status_code == 303
    assert _balance(web, wallet) == before + 250
    page = client.get(response.headers["location"]).text
    assert "Adjusted by +250." in page and "adjustment.requested" in page
    refused: Any = post(client, f"/admin/members/{account}/adjust",
                        {"wallet_id": wallet, "amount": "ten", "reason": "x"})
    assert "the amount must be a whole number" in client.get(refused.headers["location"]).text
    # A wallet of another member cannot be adjusted from this member's page.
    other: Any = post(client, f"/admin/members/{account}/adjust",
                      {"wallet_id": web.demo.wallets["dealer_south"], "amount": "5",
                       "reason": "x"})
    assert "not this member" in client.get(other.headers["location"]).text
    assert _balance(web, wallet) == before + 250


def test_place_in_tier_and_suspend(web: Web) -> None:
    client = web.admin("support")
    account = web.demo.accounts["dealer_south"]
    response: Any = post(client, f"/admin/members/{account}/tier",
                         {"level": "partner:gold", "reason": "key account"})
    page = client.get(response.headers["location"]).text
    assert "Placed on gold." in page and "Gold" in page
    response = post(client, f"/admin/members/{account}/status",
                    {"to_status": "suspended", "reason": "unpaid invoices"})
    page = client.get(response.headers["location"]).text
    assert "The enrolment is now suspended." in page
    with web.db.read() as s:
        found = members.list_enrolments(s, web.tenant_id, program_id=web.program(),
                                        account_id=account).items
        assert found[0].status == "suspended"


def test_portal_invitation_is_an_outbox_event_and_sets_a_password(web: Web) -> None:
    client = web.admin()
    account = web.demo.accounts["dealer_west"]
    with web.db.read() as s:
        tom = next(u.id for u in members.list_users(s, web.tenant_id, account)
                   if u.email == "tom@acme.example")
    response: Any = post(client, f"/admin/members/{account}/invite", {"user_id": tom})
    assert "invitation e-mail is on its way" in client.get(response.headers["location"]).text
    with web.db.read() as s:
        message = s.scalars(select(OutboxMessage).where(
            OutboxMessage.event_type == "portal.invitation")).one()
        link = message.payload["link"]
        assert message.payload["email"] == "tom@acme.example"
    path = link.split("://", 1)[1].split("/", 1)[1]
    browser = web.client()
    form = browser.get("/" + path)
    assert form.status_code == 200
    token = path.split("token=")[1]
    short = browser.post("/portal/set-password", data={
        "token": token, "password": "short", "confirm": "short", "csrf_token": csrf_of(form.text)})
    assert short.status_code == 422 and "at least 12" in short.text
    done = browser.post("/portal/set-password", data={
        "token": token, "password": "a long enough secret", "confirm": "a long enough secret",
        "csrf_token": csrf_of(form.text)}, follow_redirects=False)
    assert done.status_code == 303 and "Tom Reyes" in browser.get("/portal/home").text
    again = web.client().get("/" + path)
    assert again.status_code == 400 and "not valid any more" in again.text
    web.sign_in("portal", "tom@acme.example", "a long enough secret")


def _redeem(web: Web, code: str, account_role: str = "dealer_west") -> str:
    with web.db.transaction() as s:
        reward = next(r for r in rewards.list_rewards(s, web.tenant_id, web.program(), limit=50)
                      if r.code == code)
        return rewards.redeem(s, web.tenant_id, web.program(), reward.id,
                              web.demo.accounts[account_role], actor="test").id


def test_redemption_queue_approve_reject_fulfil(web: Web) -> None:
    first, second = _redeem(web, "headset"), _redeem(web, "headset", "dealer_south")
    client = web.admin("program_manager")
    page = client.get("/admin/redemptions").text
    assert first in page and second in page and "Wireless headset" in page
    approved: Any = post(client, f"/admin/redemptions/{first}/approve", {"back": "open"})
    assert f"Redemption {first} is approved." in client.get(approved.headers["location"]).text
    no_reason: Any = post(client, f"/admin/redemptions/{second}/reject", {"reason": " "})
    assert "needs a reason" in client.get(no_reason.headers["location"]).text
    post(client, f"/admin/redemptions/{second}/reject", {"reason": "out of region"})
    post(client, f"/admin/redemptions/{first}/fulfil")
    with web.db.read() as s:
        assert rewards.get_redemption(s, web.tenant_id, first).status == "fulfilled"
        assert rewards.get_redemption(s, web.tenant_id, second).status == "rejected"
    assert first in client.get("/admin/redemptions?status=fulfilled").text


def test_bulk_approve(web: Web) -> None:
    ids = [_redeem(web, "headset") for _ in range(3)]
    client = web.admin()
    token = csrf_of(client.get("/admin/redemptions").text)
    response = client.post("/admin/redemptions", data={
        "csrf_token": token, "action": "approve", "ids": ids, "back": "open"},
        follow_redirects=False)
    assert "3 redemption(s) done." in client.get(response.headers["location"]).text


def test_finance_may_not_touch_the_catalogue_or_apply(web: Web) -> None:
    client = web.admin("finance")
    with web.db.read() as s:
        reward = rewards.list_rewards(s, web.tenant_id, web.program(), limit=10)[0].id
    response: Any = post(client, f"/admin/catalogue/{reward}", {"stock": "5"})
    assert response.status_code == 403


def test_catalogue_stock(web: Web) -> None:
    client = web.admin()
    with web.db.read() as s:
        reward = next(r.id for r in rewards.list_rewards(s, web.tenant_id, web.program())
                      if r.code == "headset")
    post(client, f"/admin/catalogue/{reward}", {"stock": "7", "status": "active"})
    assert ">7<" in client.get("/admin/catalogue").text.replace(" ", "")


DOC_FIELD = re.compile(r'<textarea id="document" name="document"[^>]*>(.*?)</textarea>', re.S)


def _document(client: Any) -> str:
    import html

    found = DOC_FIELD.search(client.get("/admin/designer").text)
    assert found
    return html.unescape(found.group(1))


def test_designer_validates_diffs_and_applies(web: Web) -> None:
    client = web.admin("program_manager")
    current = _document(client)
    assert "own-brand" in current
    broken = current.replace("rate: '0.01'", "rate: 'lots'")
    assert broken != current
    page = client.post("/admin/designer", data={
        "document": broken, "action": "validate",
        "csrf_token": csrf_of(client.get("/admin/designer").text)}).text
    assert "problem(s)" in page and "rules[0]" in page
    doubled = current.replace("rate: '0.01'", "rate: '0.02'")
    page = client.post("/admin/designer", data={
        "document": doubled, "action": "diff",
        "csrf_token": csrf_of(client.get("/admin/designer").text)}).text
    assert "The definition is valid." in page and "changed" in page
    response = client.post("/admin/designer", data={
        "document": doubled, "action": "apply",
        "csrf_token": csrf_of(client.get("/admin/designer").text)}, follow_redirects=False)
    assert response.status_code == 303
    assert "Applied as version 2." in client.get("/admin/designer").text
    with web.db.read() as s:
        entries = audit.history(s, web.tenant_id, object_type="program")
        assert any(e.action == "program.definition_applied" for e in entries)


def test_designer_refuses_another_program_and_read_only_cannot_apply(web: Web) -> None:
    client = web.admin("read_only")
    current = _document(client)
    page = client.post("/admin/designer", data={
        "document": current, "action": "apply",
        "csrf_token": csrf_of(client.get("/admin/designer").text)}).text
    assert "your role may not apply" in page
    other = current.replace("code: partner-rewards", "code: something-else", 1)
    page = client.post("/admin/designer", data={
        "document": other, "action": "validate",
        "csrf_token": csrf_of(client.get("/admin/designer").text)}).text
    assert "this page edits program partner-rewards" in page


def test_dry_run_shows_awards_and_reasons(web: Web) -> None:
    client = web.admin("read_only")
    page = client.post("/admin/designer/dry-run", data={
        "member_number": "R-2001", "kind": "purchase", "amount": "150.00",
        "lines": "NW-PANEL-400 2 150.00",
        "csrf_token": csrf_of(client.get("/admin/designer").text)}).text
    assert 'class="award">150 tokens' in page and 'class="award">50 tokens' in page
    assert "own-brand" in page
    with web.db.read() as s:
        program = tenants.get_program(s, web.tenant_id, web.program())
        assert program.code == "partner-rewards"


def test_large_adjustment_waits_for_a_second_approver(web: Web) -> None:
    with web.db.transaction() as s:
        tenants.update_program(s, web.tenant_id, web.program(),
                               {"adjustment_approval_threshold": 100})
    account = web.demo.accounts["dealer_west"]
    wallet = web.demo.wallets["dealer_west"]
    before = _balance(web, wallet)
    finance = web.admin("finance")
    asked: Any = post(finance, f"/admin/members/{account}/adjust",
                      {"wallet_id": wallet, "amount": "500", "reason": "rebate true-up"})
    assert "waits for a second approver" in finance.get(asked.headers["location"]).text
    assert _balance(web, wallet) == before
    queue = finance.get("/admin/adjustments").text
    found = re.search(r'action="/admin/adjustments/(adj_[A-Z0-9]+)/approve"', queue)
    assert found and "rebate true-up" in queue
    own: Any = post(finance, f"/admin/adjustments/{found.group(1)}/approve")
    assert "must not be the requester" in finance.get(own.headers["location"]).text
    support = web.admin("support")
    done: Any = post(support, f"/admin/adjustments/{found.group(1)}/approve")
    assert "is posted" in support.get(done.headers["location"]).text
    assert _balance(web, wallet) == before + 500
    assert "Nothing waits for approval." in support.get("/admin/adjustments").text


def test_member_360_claims_co_marketing_referrals_and_trail(web: Web) -> None:
    from allegiance import claims, referrals
    from allegiance.kit import clock
    from tests.web.admin_support import seed_queues

    seed_queues(web.db, web.demo)
    west = web.demo.accounts["dealer_west"]
    with web.db.transaction() as s:
        unit = tenants.unit_by_code(s, web.tenant_id, web.program(), "tokens").id
        claim = claims.submit(s, web.tenant_id, web.program(), account_id=west,
                              invoice_number="INV-9001", invoice_date=clock.now(),
                              seller="Northwind Distribution",
                              lines=[{"sku": "NW-PANEL-400", "quantity": 2, "amount": 80_000}],
                              proof_ref="https://example.com/inv-9001.pdf", actor="test")
        plan = referrals.create_plan(s, web.tenant_id, web.program(), code="friends",
                                     name="Bring a dealer", bounty_unit_id=unit, bounty=500,
                                     lock_days=0)
        code = referrals.issue_code(s, web.tenant_id, plan.id, west, actor="test")
        newcomer = members.create_account(s, web.tenant_id, name="Spark Newco",
                                          email="owner@sparknewco.example", actor="test")
        referral = referrals.signup(s, web.tenant_id, web.program(), code=code.code,
                                    account_id=newcomer.id, email="owner@sparknewco.example",
                                    actor="test")
    client = web.admin()
    page = client.get(f"/admin/members/{west}").text
    assert "Sales claims" in page and "INV-9001" in page and "submitted" in page
    assert "Co-marketing" in page and "H2 co-marketing" in page and "Trade show booth" in page
    assert "Referrals" in page and "Spark Newco" in page and referral.status in page
    assert f"/admin/members/{newcomer.id}" in page
    # The audit trail of the account includes its claims and referrals.
    trail = page[page.index('id="h-audit"'):]
    assert "<td>claim.submitted</td>" in trail and f"<td>referral.{referral.status}</td>" in trail
    newcomer_page = client.get(f"/admin/members/{newcomer.id}").text
    assert "Brought by" in newcomer_page and "Acme Electrical Supply" in newcomer_page
    assert claim.id in page and "Trade show booth" not in newcomer_page
    assert "Newspaper ad" not in page  # dealer_south's claim is not dealer_west's


def test_tier_card_agrees_with_the_portal_and_the_api(web: Web) -> None:
    """The admin card, the portal and GET .../tiers show one value and one distance to the
    next level, from tiers' progress (the demo's sales count as spend)."""
    account = web.demo.accounts["dealer_west"]
    api = web.client().get(f"/v1/programs/{web.program()}/accounts/{account}/tiers",
                           headers={"Authorization": f"Bearer {web.demo.api_key}"}).json()
    state = api["tiers"][0]
    assert (state["level"], state["value"], state["next_level"]) == ("silver", 1_200_000, "gold")
    value = f"{state['value'] // 100:,}.{state['value'] % 100:02d} USD"
    needed = f"{state['needed'] // 100:,}.{state['needed'] % 100:02d} USD"
    admin_page = web.admin().get(f"/admin/members/{account}").text
    portal_page = web.member().get("/portal/home").text
    assert f'<span class="tier-value">{value}</span>' in admin_page
    assert f'<span class="tier-needed">{needed}</span> more to reach gold' in admin_page
    assert "Partner</strong>: Silver" in admin_page
    assert "Partner: Silver" in portal_page and f"{needed} more spend" in portal_page
