"""Partner sales claims: window, duplicates across members and formats, review with a
reason, reviewer ≠ submitter, and earning through the rules on approval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from allegiance import audit, claims
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.money_support import NOW, Money
from tests.support.invariants import assert_ledger_invariants

SPIFF = {"code": "spiff", "trigger": "purchase", "recipient": "user",
         "condition": 'event.channel == "claim"',
         "effects": [{"type": "fixed", "unit": "usd", "points": 2500}]}


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db, SPIFF)
    assert_ledger_invariants(db)


def submit(m: Money, account_id: str, number: str = "INV-000123", seller: str = "Acme Ltd",
           actor: str = "partner", **kw: Any) -> claims.SalesClaim:
    kw.setdefault("invoice_date", NOW - timedelta(days=3))
    kw.setdefault("lines", [{"sku": "SKU-1", "quantity": 2, "unit_price": 5000}])
    with m.db.transaction() as s:
        row = claims.submit(s, m.tenant_id, m.program_id, account_id=account_id,
                            invoice_number=number, seller=seller, proof_ref="s3://proof/1.pdf",
                            actor=actor, **kw)
        s.expunge(row)
        return row


def decide(m: Money, fn: Any, claim_id: str, actor: str = "ops", **kw: Any) -> claims.SalesClaim:
    with m.db.transaction() as s:
        row = fn(s, m.tenant_id, claim_id, actor=actor, **kw)
        s.expunge(row)
        return row


def test_invoice_key_ignores_formatting() -> None:
    variants = ["INV-000123", "inv 123", "Invoice No. 0123", "#123", "INV/123", " inv-00123 "]
    keys = {claims.invoice_key("ACME Ltd.", v) for v in variants}
    assert keys == {"ACME|123"}
    assert claims.invoice_key("acme limited", "123") == "ACME|123"
    assert claims.invoice_key("Acme", "124") != claims.invoice_key("Acme", "123")
    assert claims.invoice_key("Other", "123") != claims.invoice_key("Acme", "123")


@pytest.mark.parametrize(("seller", "number"), [
    ("Acme Ltd", "INV2026000457"), ("ACME GmbH & Co. KG", "inv-2026-457"),
    ("Acme, L.L.C.", "#2026000457"), ("acme and co", "No. 2026/000457"),
    ("ACME INC.", "INV 002026000457")])
def test_a_copy_in_another_format_or_seller_spelling_is_a_duplicate(
        m: Money, seller: str, number: str) -> None:
    first = submit(m, m.account(), "INV-2026-000457")
    copy = submit(m, m.account(), number, seller=seller)
    assert (copy.status, copy.duplicate_of) == ("duplicate", first.id)


def test_a_number_without_separators_claimed_first_catches_the_padded_copy(m: Money) -> None:
    first = submit(m, m.account(), "INV2026000457")
    assert submit(m, m.account(), "INV-2026-000457").duplicate_of == first.id
    assert submit(m, m.account(), "INV-2026-000458").status == "submitted"  # control


def test_a_rejection_releases_every_key_of_the_invoice(m: Money) -> None:
    first = submit(m, m.account(), "INV-2026-000457")
    decide(m, claims.reject, first.id, reason="blurred scan")
    with m.db.read() as s:
        assert s.query(claims.ClaimInvoiceKey).filter_by(claim_id=first.id).count() == 0
    again = submit(m, m.account(), "INV2026000457")
    assert again.status == "submitted"
    assert submit(m, m.account(), "inv-2026-000457").duplicate_of == again.id


def test_approval_earns_through_the_rules_and_pays_the_rep(m: Money) -> None:
    partner = m.account()
    rep = m.user(partner, role="rep")
    claim = submit(m, partner, user_id=rep)
    assert claim.status == "submitted" and claim.amount == 10000
    assert claim.review_due_at == NOW + timedelta(days=5)
    approved = decide(m, claims.approve, claim.id)
    assert approved.status == "approved" and approved.event_id is not None
    # base rule: 1 point per dollar + genuine SKU: 5 per item → 100 + 10 points
    assert m.wallet(partner).posted == 110
    assert m.money(rep, "user").posted == 2500  # SPIFF to the individual rep
    with m.db.read() as s:
        actions = [r.action for r in audit.history(s, m.tenant_id, "sales_claim", claim.id)]
    assert "claim.submitted" in actions and "claim.approved" in actions


def test_duplicates_across_members_and_formats_are_flagged(m: Money) -> None:
    first = submit(m, m.account())
    variants = ["inv 123", "Invoice No. 0123", "#000123", "INV/123"]
    for number in variants:
        dup = submit(m, m.account(), number=number, seller="ACME limited")
        assert dup.status == "duplicate" and dup.duplicate_of == first.id
        with pytest.raises(AllegianceError) as err:
            decide(m, claims.approve, dup.id)
        assert err.value.code == "claim_not_pending"
    # another seller's invoice 123 is another invoice
    assert submit(m, m.account(), seller="Other GmbH").status == "submitted"


def test_reject_with_reason_frees_the_invoice(m: Money) -> None:
    partner = m.account()
    claim = submit(m, partner)
    with pytest.raises(AllegianceError):
        decide(m, claims.reject, claim.id, reason=" ")
    rejected = decide(m, claims.reject, claim.id, reason="amount does not match the invoice")
    assert rejected.status == "rejected" and rejected.reason
    assert submit(m, partner).status == "submitted"  # corrected resubmission
    assert m.wallet(partner).posted == 0


def test_reviewer_is_never_the_submitter(m: Money) -> None:
    claim = submit(m, m.account(), actor="key:partner")
    with pytest.raises(AllegianceError) as err:
        decide(m, claims.approve, claim.id, actor="key:partner")
    assert err.value.code == "same_reviewer"


def test_submission_window(m: Money) -> None:
    partner = m.account()
    with pytest.raises(AllegianceError) as err:
        submit(m, partner, invoice_date=NOW - timedelta(days=61))
    assert err.value.code == "claim_outside_window"
    with pytest.raises(AllegianceError):
        submit(m, partner, invoice_date=NOW + timedelta(days=1))
    assert submit(m, partner, invoice_date=NOW - timedelta(days=60)).status == "submitted"


def test_overdue_queue(m: Money) -> None:
    claim = submit(m, m.account())
    with clock.frozen(NOW + timedelta(days=6)), m.db.read() as s:
        overdue = [c.id for c in claims.list_claims(s, m.tenant_id, m.program_id,
                                                    overdue=True)]
    assert overdue == [claim.id]
