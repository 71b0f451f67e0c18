"""The admin's enrolment-application and co-marketing queues: filters, decisions with
reasons, bulk decisions, reimbursements shown, and the operator roles' limits."""

from __future__ import annotations

from typing import Any

from allegiance import audit, ledger, mdf, members
from tests.web.admin_support import seed_queues
from tests.web.conftest import Web, post


def _status(web: Web, enrolment_id: str) -> str:
    with web.db.read() as s:
        return members.get_enrolment(s, web.tenant_id, enrolment_id).status


def _claim(web: Web, claim_id: str) -> mdf.MdfClaim:
    with web.db.read() as s:
        row = mdf.get_claim(s, web.tenant_id, claim_id)
        s.expunge(row)
        return row


def test_applications_approve_reject_and_bulk(web: Web) -> None:
    queues = seed_queues(web.db, web.demo)
    ids = queues.applications
    client = web.admin("support")
    page = client.get("/admin/applications").text
    for name in ids:
        assert name in page
    assert "Ohm Sweet Ohm" not in client.get("/admin/applications?q=delta").text
    # A rejection needs a reason; nothing changes without one.
    refused: Any = post(client, f"/admin/applications/{ids['Current Electric']}/reject",
                        {"reason": " "})
    assert "a rejection needs a reason" in client.get(refused.headers["location"]).text
    assert _status(web, ids["Current Electric"]) == "applied"
    done: Any = post(client, f"/admin/applications/{ids['Current Electric']}/reject",
                     {"reason": "outside the partner network"})
    assert "is rejected" in client.get(done.headers["location"]).text
    assert _status(web, ids["Current Electric"]) == "rejected"
    rejected = client.get("/admin/applications?status=rejected").text
    assert "Current Electric" in rejected and "Delta Solar" not in rejected
    # Bulk approval of the two others; the already-decided one is reported, not redone.
    bulk: Any = client.post("/admin/applications", data={
        "csrf_token": _token(client), "action": "approve",
        "ids": [ids["Delta Solar Installers"], ids["Ohm Sweet Ohm"], ids["Current Electric"]]},
        follow_redirects=False)
    text = client.get(bulk.headers["location"]).text
    assert "2 application(s) done." in text and "not applied" in text
    assert {_status(web, ids[n]) for n in ("Delta Solar Installers", "Ohm Sweet Ohm")} == {
        "active"}
    with web.db.read() as s:
        last = members.enrolment_history(s, web.tenant_id, ids["Current Electric"])[-1]
        assert last.reason == "outside the partner network"
        assert last.actor.startswith("operator:")


def _token(client: Any) -> str:
    from tests.web.conftest import csrf_of
    return csrf_of(client.get("/admin/dashboard").text)


def test_application_roles(web: Web) -> None:
    queues = seed_queues(web.db, web.demo)
    enrolment = queues.applications["Current Electric"]
    for role in ("finance", "read_only"):
        client = web.admin(role)
        page = client.get("/admin/applications").text
        assert "Current Electric" in page and f"/admin/applications/{enrolment}/approve" not in page
        response: Any = post(client, f"/admin/applications/{enrolment}/approve")
        assert response.status_code == 403
    assert _status(web, enrolment) == "applied"
    # Another program's enrolment cannot be decided from this program's queue.
    client = web.admin("program_manager")
    with web.db.transaction() as s:
        other = members.list_enrolments(s, web.tenant_id, program_id=web.program(
            "dealer-cashback"), limit=1).items[0].id
    response = post(client, f"/admin/applications/{other}/approve")
    assert "not found" in client.get(response.headers["location"]).text


def test_mdf_preapprove_pay_and_reject(web: Web) -> None:
    queues = seed_queues(web.db, web.demo)
    client = web.admin("finance")
    page = client.get("/admin/co-marketing").text
    # The queue shows what each would reimburse: 50% of the US$1,200 estimate, and of the
    # US$400 claim.
    assert "Trade show booth" in page and "600.00 USD" in page and "200.00 USD" in page
    assert "H2 co-marketing" in page and "10,000.00 USD" in page
    west = queues.requests["dealer_west"]
    response: Any = post(client, f"/admin/co-marketing/{west}/approve", {"amount": "500"})
    assert "is pre-approved" in client.get(response.headers["location"]).text
    assert _claim(web, west).preapproved_amount == 50_000
    bad: Any = post(client, f"/admin/co-marketing/{queues.requests['dealer_south']}/approve",
                    {"amount": "ten"})
    assert "the amount must be a number" in client.get(bad.headers["location"]).text
    assert _claim(web, queues.requests["dealer_south"]).status == "requested"
    paid: Any = post(client, f"/admin/co-marketing/{queues.claim_id}/approve")
    assert "is paid" in client.get(paid.headers["location"]).text
    claim = _claim(web, queues.claim_id)
    assert (claim.status, claim.amount) == ("paid", 20_000)
    with web.db.read() as s:
        wallet = ledger.wallet(s, web.tenant_id, web.program(), _coop(web),
                               "account", web.demo.accounts["dealer_south"])
        assert ledger.balance_of(wallet).posted == 20_000
    no_reason: Any = post(client, f"/admin/co-marketing/{queues.requests['dealer_south']}/reject")
    assert "a rejection needs a reason" in client.get(no_reason.headers["location"]).text
    rejected: Any = post(client, f"/admin/co-marketing/{queues.requests['dealer_south']}/reject",
                         {"reason": "no brand on the spot"})
    assert "is rejected" in client.get(rejected.headers["location"]).text
    assert _claim(web, queues.requests["dealer_south"]).reason == "no brand on the spot"
    paid_page = client.get("/admin/co-marketing?status=paid").text
    assert "Newspaper ad" in paid_page and "Trade show booth" not in paid_page
    with web.db.read() as s:
        actions = {r.action for r in s.query(audit.AuditRecord).filter(
            audit.AuditRecord.object_type == "mdf_claim")}
    assert {"mdf_claim.preapproved", "mdf_claim.paid", "mdf_claim.rejected"} <= actions


def _coop(web: Web) -> str:
    from allegiance import tenants
    with web.db.read() as s:
        return tenants.unit_by_code(s, web.tenant_id, web.program(), "coop-usd").id


def test_mdf_bulk_and_roles(web: Web) -> None:
    queues = seed_queues(web.db, web.demo)
    for role in ("support", "read_only"):
        client = web.admin(role)
        assert "Trade show booth" in client.get("/admin/co-marketing").text
        response: Any = post(client, f"/admin/co-marketing/{queues.claim_id}/approve")
        assert response.status_code == 403
    assert _claim(web, queues.claim_id).status == "claimed"
    client = web.admin("program_manager")
    ticked = [*queues.requests.values(), queues.claim_id]
    refused: Any = client.post("/admin/co-marketing", data={
        "csrf_token": _token(client), "action": "reject", "reason": "", "ids": ticked},
        follow_redirects=False)
    assert "needs a reason" in client.get(refused.headers["location"]).text
    done: Any = client.post("/admin/co-marketing", data={
        "csrf_token": _token(client), "action": "approve", "ids": ticked},
        follow_redirects=False)
    assert "3 request or claim(s) done." in client.get(done.headers["location"]).text
    statuses = {_claim(web, i).status for i in ticked}
    assert statuses == {"preapproved", "paid"}
    assert _claim(web, queues.requests["dealer_west"]).preapproved_amount == 60_000
    # Deciding twice changes nothing more.
    again: Any = post(client, f"/admin/co-marketing/{queues.claim_id}/approve")
    assert "the claim is paid" in client.get(again.headers["location"]).text
