"""Sales claims through the web apps: a member submits an invoice with its proof file in the
portal; an operator reviews it in the admin queue (filters, approve, reject with a reason,
bulk); the approved claim earns and the member sees the points."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from allegiance import claims, ledger
from allegiance.kit import clock
from allegiance.web.security import reading
from tests.web.conftest import Web
from tests.web.portal_helpers import PDF, landed, portal_user, proof_dir, send, stored

__all__ = ["proof_dir"]


def _form(invoice: str = "INV-2026-0457", seller: str = "Acme Wholesale Ltd",
          days_ago: int = 1, **extra: Any) -> dict[str, Any]:
    day = (clock.now() - timedelta(days=days_ago)).strftime("%Y-%m-%d")
    return {"invoice_number": invoice, "invoice_date": day, "seller": seller,
            "sku": ["CAB-100", "", "SW-7"], "name": ["Cable drum", "", "Switch"],
            "quantity": ["2", "", "1"], "unit_price": ["150.00", "", "1,000.50"], **extra}


def _submit(client: Any, data: dict[str, Any], content: bytes = PDF,
            name: str = "invoice.pdf") -> str:
    response = send(client, "/portal/claims", data,
                    files={"proof": (name, content, "application/pdf")})
    return landed(client, response)


def _claims(web: Web) -> list[claims.SalesClaim]:
    with reading(web.db) as s:
        return list(s.scalars(select(claims.SalesClaim).order_by(claims.SalesClaim.id)))


def _balance(web: Web, role: str = "dealer_west") -> int:
    with web.db.read() as s:
        return ledger.balance_of(ledger.get_account(s, web.tenant_id,
                                                    web.demo.wallets[role])).available


def test_member_submits_with_proof_and_the_approval_earns(web: Web, proof_dir: Path) -> None:
    member, operator = web.member(), web.admin()
    before = _balance(web)
    page = _submit(member, _form())
    assert "waits for review" in page and "INV-2026-0457" in page
    [row] = _claims(web)
    assert (row.status, row.amount, row.account_id) == ("submitted", 130_050,
                                                        web.demo.accounts["dealer_west"])
    assert [line["sku"] for line in row.lines] == ["CAB-100", "SW-7"]
    assert row.lines[1]["unit_price"] == 100_050 and row.submitted_by.startswith("member_user:")
    [kept] = stored(proof_dir)
    assert kept.read_bytes() == PDF and row.proof_ref.endswith(kept.name)
    download = member.get(f"/portal/claims/{row.id}/proof")
    assert download.content == PDF and download.headers["content-type"] == "application/pdf"
    assert "attachment" in download.headers["content-disposition"]

    queue = operator.get("/admin/claims").text
    assert row.id in queue and "Acme Electrical Supply" in queue and "CAB-100 × 2" in queue
    assert "by Grace Liu" in queue
    assert operator.get(f"/admin/claims/{row.id}/proof").content == PDF
    done = landed(operator, send(operator, f"/admin/claims/{row.id}/approve",
                                 {"back": "/admin/claims"}))
    assert f"Claim {row.id} is approved." in done
    earned = _balance(web) - before
    assert earned >= 1_300  # 1 token per US$1 of the $1,300.50 invoice, and more by tier
    assert f"{before + earned:,}" in member.get("/portal/home").text
    detail = member.get(f"/portal/claims/{row.id}").text
    assert "approved" in detail and "Download the proof file" in detail
    assert "Nothing here." in operator.get("/admin/claims").text  # the queue is empty


def test_refused_claims_keep_nothing(web: Web, proof_dir: Path) -> None:
    member = web.member()
    checks = [
        (_form(), b"hello, not a pdf", "must be a PDF"),
        (_form(), b"", "choose a proof file"),
        (_form(days_ago=-3), PDF, "accepted up to"),
        (_form(days_ago=90), PDF, "accepted up to 60 days"),
        (_form(unit_price=["12.345", "", "1"]), PDF, "at most two decimals"),
        (_form(quantity=["two", "", "1"]), PDF, "quantity must be a whole number"),
        (_form(sku=["", "", ""], name=["", "", ""], quantity=["", "", ""],
               unit_price=["", "", ""]), PDF, "add at least one line"),
        (_form(invoice=""), PDF, "enter the invoice number"),
        (_form(seller="   "), PDF, "enter who issued the invoice"),
    ]
    for data, content, said in checks:
        assert said in _submit(member, data, content), said
    assert _claims(web) == [] and stored(proof_dir) == []
    response = member.post("/portal/claims", data=_form(),
                           files={"proof": ("i.pdf", PDF, "application/pdf")},
                           follow_redirects=False)
    assert response.status_code == 403 and _claims(web) == []  # no CSRF token


def test_a_viewer_may_not_claim_and_another_account_is_not_found(web: Web,
                                                                 proof_dir: Path) -> None:
    viewer = portal_user(web, "kim@acme.example")  # viewer of the San Diego branch
    assert "Claim a sale" not in viewer.get("/portal/claims").text
    assert "may not submit" in _submit(viewer, _form())
    owner = web.member()
    south = web.demo.accounts["dealer_south"]
    response = send(owner, "/portal/claims", _form(account=south),
                    files={"proof": ("i.pdf", PDF, "application/pdf")})
    assert response.status_code == 404
    assert _claims(web) == [] and stored(proof_dir) == []


def test_a_copy_of_a_claimed_invoice_is_a_duplicate(web: Web) -> None:
    _submit(web.member(), _form())
    page = _submit(web.member(1), _form(invoice="inv 2026/457", seller="ACME WHOLESALE limited"))
    assert "already claimed" in page
    first, copy = _claims(web)
    assert copy.status == "duplicate" and copy.duplicate_of == first.id
    theirs = web.member(1).get(f"/portal/claims/{copy.id}").text
    assert "already claimed" in theirs and first.id not in theirs  # no other member's id
    queue = web.admin().get("/admin/claims?status=duplicate").text
    assert copy.id in queue and f"already claimed by {first.id}" in queue
    assert f'value="{first.id}"' not in queue


def test_reject_needs_a_reason_and_the_member_sees_it(web: Web) -> None:
    member, operator = web.member(), web.admin()
    _submit(member, _form())
    [row] = _claims(web)
    page = landed(operator, send(operator, f"/admin/claims/{row.id}/reject", {"reason": " "}))
    assert "needs a reason" in page and _claims(web)[0].status == "submitted"
    landed(operator, send(operator, f"/admin/claims/{row.id}/reject",
                          {"reason": "The invoice is not legible"}))
    assert _claims(web)[0].status == "rejected"
    mine = member.get("/portal/claims?status=rejected").text
    assert "The invoice is not legible" in mine and row.id in mine
    assert row.id not in member.get("/portal/claims?status=approved").text
    # the invoice may be claimed again, corrected
    assert "waits for review" in _submit(member, _form())


def test_bulk_decisions_report_each_failure(web: Web) -> None:
    member, operator = web.member(), web.admin()
    for number in ("A-1", "A-2", "A-3"):
        _submit(member, _form(invoice=number))
    a1, a2, a3 = (c.id for c in _claims(web))
    landed(operator, send(operator, f"/admin/claims/{a3}/reject", {"reason": "no"}))
    page = landed(operator, send(operator, "/admin/claims", {
        "ids": [a1, a2, a3], "action": "approve", "back": "/admin/claims"}))
    assert "2 claim(s) done." in page and f"{a3}: claim {a3} is rejected" in page
    assert [c.status for c in _claims(web)] == ["approved", "approved", "rejected"]
    assert "Tick at least one claim." in landed(operator, send(operator, "/admin/claims", {
        "action": "approve"}))


def test_the_reviewer_is_never_the_submitter(web: Web) -> None:
    operator = web.admin()
    with web.db.transaction() as s:
        from allegiance import operators

        owner = next(o for o in operators.list_operators(s, web.tenant_id)
                     if o.role == "owner")
        row = claims.submit(s, web.tenant_id, web.program(),
                            account_id=web.demo.accounts["dealer_west"], invoice_number="X-1",
                            invoice_date=clock.now() - timedelta(days=1), seller="Acme",
                            lines=[{"sku": "A", "quantity": 1, "unit_price": 100}],
                            proof_ref="https://files.example/x-1.pdf",
                            actor=f"operator:{owner.id}")
        claim_id = row.id
    page = landed(operator, send(operator, f"/admin/claims/{row.id}/approve", {}))
    assert "the reviewer cannot be the submitter" in page
    assert _claims(web)[0].status == "submitted"
    # a proof given by reference (an API client's URL) has no file to download
    assert operator.get(f"/admin/claims/{claim_id}/proof").status_code == 404
    queue = operator.get("/admin/claims").text
    assert "https://files.example/x-1.pdf" in queue and f"/admin/claims/{claim_id}/proof" not in queue
    finance = web.admin("finance")
    landed(finance, send(finance, f"/admin/claims/{claim_id}/approve", {}))
    assert _claims(web)[0].status == "approved"


def test_queue_filters_and_roles(web: Web) -> None:
    member = web.member()
    for number, seller in (("F-1", "Acme"), ("F-2", "Bolt Traders"), ("F-3", "Acme")):
        _submit(member, _form(invoice=number, seller=seller))
    f1, f2, f3 = _claims(web)
    with web.db.transaction() as s:
        s.execute(update(claims.SalesClaim).where(claims.SalesClaim.id == f1.id).values(
            review_due_at=clock.now() - timedelta(hours=1)))
    operator = web.admin()
    overdue = operator.get("/admin/claims?overdue=1").text
    assert f1.id in overdue and f2.id not in overdue and f3.id not in overdue
    bolt = operator.get("/admin/claims?q=bolt").text
    assert f2.id in bolt and f1.id not in bolt
    south = operator.get(f"/admin/claims?account={web.demo.accounts['dealer_south']}").text
    assert "Nothing here." in south
    reader = web.admin("read_only")
    page = reader.get("/admin/claims").text
    assert f1.id in page and f"/admin/claims/{f1.id}/approve" not in page
    assert send(reader, f"/admin/claims/{f1.id}/approve", {}).status_code == 403
    assert _claims(web)[0].status == "submitted"
