"""The main flows end to end in a real browser (Chromium through Playwright) against a real
server: an operator approves and fulfils a redemption and the member sees it; a member
redeems, the stock drops and the order appears in the admin queue; a rule change applied in
the designer changes what the next event earns; a member cannot see another account."""

from __future__ import annotations

from typing import Any

import httpx

from allegiance import ledger
from tests.ui.conftest import Site, admin_sign_in, portal_sign_in


def _balance(site: Site, role: str) -> int:
    with site.db.read() as s:
        return ledger.balance_of(ledger.get_account(s, site.demo.tenant_id,
                                                    site.demo.wallets[role])).available


def test_member_redeems_stock_drops_and_operator_approves(site: Site, browser: Any) -> None:
    member = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    operator = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    try:
        portal_sign_in(member, site)
        member.goto(f"{site.url}/portal/catalogue")
        headset = member.get_by_role("article").filter(has_text="Wireless headset")
        assert "25 left" in headset.inner_text()
        headset.get_by_role("button", name="Redeem Wireless headset").click()
        member.wait_for_url("**/portal/orders**")
        assert "waits for approval" in member.get_by_role("status").inner_text()
        site.shot(member, "flow-portal-ordered")
        member.goto(f"{site.url}/portal/catalogue")
        assert "24 left" in member.get_by_role("article").filter(
            has_text="Wireless headset").inner_text()

        admin_sign_in(operator, site)
        operator.get_by_role("link", name="Redemptions", exact=True).click()
        row = operator.get_by_role("row").filter(has_text="Acme Electrical Supply").filter(
            has_text="Wireless headset")
        assert "requested" in row.inner_text()
        site.shot(operator, "flow-admin-queue")
        row.get_by_role("button", name="Approve").click()
        operator.wait_for_url("**/admin/redemptions**")
        assert "is approved" in operator.get_by_role("status").inner_text()
        operator.get_by_role("row").filter(has_text="Wireless headset").get_by_role(
            "button", name="Fulfil").click()
        assert "is fulfilled" in operator.get_by_role("status").inner_text()

        member.goto(f"{site.url}/portal/orders")
        assert "fulfilled" in member.get_by_role("row").filter(
            has_text="Wireless headset").inner_text()
        site.shot(member, "flow-portal-fulfilled")
    finally:
        member.context.close()
        operator.context.close()


def test_operator_adjusts_and_the_member_sees_the_points(site: Site, browser: Any) -> None:
    operator = browser.new_context().new_page()
    member = browser.new_context().new_page()
    try:
        admin_sign_in(operator, site)
        operator.get_by_role("link", name="Members", exact=True).click()
        operator.get_by_label("Search by name, member number or e-mail").fill("R-2002")
        operator.get_by_role("button", name="Search").click()
        operator.get_by_role("link", name="Bolt & Wire Co").click()
        operator.get_by_label("Amount (negative to take away)").fill("750")
        operator.get_by_label("Reason for the adjustment").fill("Trade show bonus")
        operator.get_by_role("button", name="Adjust").click()
        assert "Adjusted by +750." in operator.get_by_role("status").inner_text()
        portal_sign_in(member, site, which=1)
        wallet = site.demo.wallets["dealer_south"]
        assert member.locator(f'[data-wallet="{wallet}"]').inner_text() == "5,750"  # 8,000 - 3,000 held + 750
        member.goto(f"{site.url}/portal/history")
        assert "Trade show bonus" in member.get_by_role("table").inner_text()
    finally:
        operator.context.close()
        member.context.close()


def test_rule_change_in_the_designer_changes_the_next_event(site: Site, page: Any) -> None:
    program = next(p for p in site.demo.programs if p.code == "partner-rewards")
    api = httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {site.demo.api_key}"},
                       timeout=30)

    def purchase(external_id: str) -> None:
        response = api.post(f"/v1/programs/{program.id}/events", json={
            "external_id": external_id, "member_number": "R-2002", "amount": 10_000,
            "currency": "USD"})
        assert response.status_code == 201, response.text

    start = _balance(site, "dealer_south")
    purchase("before-change")
    assert _balance(site, "dealer_south") == start + 100

    admin_sign_in(page, site)
    page.get_by_role("link", name="Designer").click()
    editor = page.get_by_label("Definition", exact=True)
    document = editor.input_value()
    assert "rate: '0.01'" in document
    editor.fill(document.replace("rate: '0.01'", "rate: '0.03'", 1))
    page.get_by_role("button", name="Show changes").click()
    assert 'rules[code=base].effects[0].rate changed: "0.01" → "0.03"' in page.locator(
        ".diff").inner_text()
    site.shot(page, "flow-designer-diff")
    page.get_by_role("button", name="Apply as a new version").click()
    assert "Applied as version 2." in page.get_by_role("status").inner_text()

    page.get_by_label("Member number").fill("R-2002")
    page.get_by_label("Amount (USD, e.g. 125.00)").fill("100.00")
    page.get_by_role("button", name="Dry-run").click()
    assert "300 tokens" in page.locator("#dry-result ~ p").first.inner_text()
    site.shot(page, "flow-designer-dry-run")

    after = _balance(site, "dealer_south")
    purchase("after-change")
    assert _balance(site, "dealer_south") == after + 300
    api.close()


def test_a_member_cannot_see_another_account(site: Site, page: Any) -> None:
    portal_sign_in(page, site)  # Grace of Acme Electrical Supply
    options = page.get_by_label("Account").locator("option").all_inner_texts()
    assert sorted(options) == ["Acme Electrical Supply", "Acme Electrical — San Diego"]
    other = site.demo.accounts["dealer_south"]
    response = page.goto(f"{site.url}/portal/history?account={other}")
    assert response is not None and response.status == 404
    assert "Bolt" not in page.content()
    site.shot(page, "flow-portal-other-account")
