"""Custom requests on the web: the admin queue of a personal manager (price, fulfil, decline;
only the account's manager may price) and the portal, where the member asks, accepts and
withdraws; the portal academy (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from allegiance import engagement, ledger, operators, tenants
from allegiance.engagement import academy
from allegiance.kit import clock
from allegiance.memberships import managers
from tests.web.conftest import Web, post


def _request(web: Web, description: str) -> str:
    with web.db.transaction() as s:
        return managers.create_request(s, web.tenant_id, web.program(),
                                       web.demo.accounts["dealer_west"],
                                       description=description, actor="member").id


def test_the_manager_prices_and_fulfils_a_custom_request(web: Web) -> None:
    account = web.demo.accounts["dealer_west"]
    with web.db.transaction() as s:
        support = operators.operator_by_email(s, web.tenant_id, web.operators["support"])
        assert support is not None
        managers.assign_manager(s, web.tenant_id, account, support.id, actor="test")
        unit = next(u for u in tenants.list_units(s, web.tenant_id, web.program())
                    if u.kind == "points")
        before = ledger.balance_of(ledger.wallet(s, web.tenant_id, web.program(), unit.id,
                                                 "account", account)).posted
    rack, audit = _request(web, "Branded server rack"), _request(web, "Network audit")
    other = web.admin("program_manager")  # not the account's manager
    assert "Nothing here." in other.get("/admin/requests").text  # none of its accounts
    everyone = other.get("/admin/requests?mine=false").text
    assert "Branded server rack" in everyone and 'action="/admin/requests/' not in everyone
    refused: Any = post(other, f"/admin/requests/{rack}/quote",
                        {"unit_id": unit.id, "price": "10"})
    assert "only the account&#39;s manager" in other.get(refused.headers["location"]).text
    client = web.admin("support")
    page = client.get("/admin/requests").text
    assert "Branded server rack" in page and "Network audit" in page
    bad: Any = post(client, f"/admin/requests/{rack}/quote", {"unit_id": unit.id, "price": "x"})
    assert "positive whole number" in client.get(bad.headers["location"]).text
    quoted: Any = post(client, f"/admin/requests/{rack}/quote",
                       {"unit_id": unit.id, "price": "250", "valid_days": "14",
                        "note": "installed"})
    assert f"Request {rack} is quoted at 250." in client.get(quoted.headers["location"]).text
    post(client, f"/admin/requests/{audit}/decline")
    with web.db.transaction() as s:
        managers.accept(s, web.tenant_id, rack, actor="member")
    assert 'action="/admin/requests/' + rack + '/fulfil"' in client.get("/admin/requests").text
    post(client, f"/admin/requests/{rack}/fulfil")
    with web.db.read() as s:
        assert managers.get_request(s, web.tenant_id, rack).status == "fulfilled"
        assert managers.get_request(s, web.tenant_id, audit).status == "declined"
        after = ledger.balance_of(ledger.wallet(s, web.tenant_id, web.program(), unit.id,
                                                "account", account)).posted
    assert before - after == 250
    assert rack in client.get("/admin/requests?status=done").text
    read_only = web.admin("read_only")
    denied: Any = post(read_only, f"/admin/requests/{audit}/decline")
    assert denied.status_code == 403  # viewing is not pricing


def test_the_member_asks_accepts_and_withdraws_in_the_portal(web: Web) -> None:
    account = web.demo.accounts["dealer_west"]
    grace, priya = web.member(0), web.member(1)
    assert "no personal manager" in grace.get("/portal/requests").text
    with web.db.transaction() as s:
        support = operators.operator_by_email(s, web.tenant_id, web.operators["support"])
        assert support is not None
        managers.assign_manager(s, web.tenant_id, account, support.id, actor="test")
        unit = next(u for u in tenants.list_units(s, web.tenant_id, web.program())
                    if u.kind == "points")
    asked: Any = post(grace, "/portal/requests",
                      {"description": "Label printer for the warehouse", "quantity": "2"})
    assert "Sent to your personal manager" in grace.get(asked.headers["location"]).text
    with web.db.transaction() as s:
        (row,) = managers.list_requests(s, web.tenant_id, web.program(), account_id=account)
        managers.quote(s, web.tenant_id, row.id, operator_id=support.id, unit_id=unit.id,
                       price=400, actor="test")
        wallet = ledger.wallet(s, web.tenant_id, web.program(), unit.id, "account", account)
        before = ledger.balance_of(wallet).available
    page = grace.get("/portal/requests").text
    assert "Label printer for the warehouse × 2" in page and "Accept" in page
    assert priya.get(f"/portal/requests?account={account}").status_code == 404
    foreign: Any = post(priya, f"/portal/requests/{row.id}/accept")
    assert foreign.status_code == 404
    accepted: Any = post(grace, f"/portal/requests/{row.id}/accept")
    assert "the price is reserved" in grace.get(accepted.headers["location"]).text
    with web.db.read() as s:
        held = ledger.balance_of(ledger.get_account(s, web.tenant_id, wallet.id)).available
    assert held == before - 400
    post(grace, f"/portal/requests/{row.id}/cancel")
    with web.db.read() as s:
        assert managers.get_request(s, web.tenant_id, row.id).status == "cancelled"
        assert ledger.balance_of(ledger.get_account(s, web.tenant_id,
                                                    wallet.id)).available == before


def test_the_portal_academy_shows_courses_and_certifications(web: Web) -> None:
    account = web.demo.accounts["dealer_west"]
    with web.db.transaction() as s:
        program = tenants.get_program(s, web.tenant_id, web.program())
        for code, name in (("basics", "Lighting basics"), ("controls", "Smart controls")):
            academy.create_course(s, web.tenant_id, program.id, code=code, name=name, hours=2)
        academy.create_certification(s, web.tenant_id, program.id, code="installer",
                                     name="Certified installer", courses=["basics", "controls"],
                                     valid_days=365)
        academy.on_activity(s, web.tenant_id, program, engagement.Occurrence(
            event_id="evt_web_1", program_id=program.id, account_id=account, kind="activity",
            activity_type="course_completed", occurred_at=clock.now(), amount=0, quantity=1,
            attributes={"course": "basics"}), actor="test")
    page = web.member(0).get("/portal/academy").text
    assert "Lighting basics" in page and "Certified installer" in page
    assert "✓ basics" in page and "✓ controls" not in page and "not yet" in page
    with web.db.transaction() as s:
        program = tenants.get_program(s, web.tenant_id, web.program())
        academy.on_activity(s, web.tenant_id, program, engagement.Occurrence(
            event_id="evt_web_2", program_id=program.id, account_id=account, kind="activity",
            activity_type="course_completed", occurred_at=clock.now(), amount=0, quantity=1,
            attributes={"course": "controls"}), actor="test")
    page = web.member(0).get("/portal/academy").text
    assert '<span class="badge active">active</span>' in page
