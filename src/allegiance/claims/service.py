"""Partner sales claims: submission inside a window, duplicate detection on a normalised
invoice key across all members, a review queue with a deadline, approve (the claim earns
through the same rules, limits, budgets and ledger as a purchase) or reject with a reason.
The reviewer is never the submitter; every state change is audited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, engagement, events, members, tenants
from allegiance.claims import domain
from allegiance.claims.errors import (
    ClaimNotFound,
    ClaimNotPending,
    InvalidClaim,
    OutsideWindow,
    SameReviewer,
)
from allegiance.claims.models import ClaimInvoiceKey, SalesClaim
from allegiance.kit import clock, outbox
from allegiance.kit.db import is_unique_violation
from allegiance.kit.ids import new_id
from allegiance.kit.money import MAX_AMOUNT

LINE_FIELDS = ("sku", "name", "category", "brand", "labels", "quantity", "unit_price", "amount")


def _settings(program: tenants.Program) -> tuple[int, int]:
    raw = (program.settings or {}).get("claims") or {}
    window = raw.get("window_days", domain.DEFAULT_WINDOW_DAYS)
    sla = raw.get("sla_days", domain.DEFAULT_SLA_DAYS)
    return int(window), int(sla)


def _clean_lines(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(lines):
        path = f"lines[{index}]"
        unknown = set(raw) - set(LINE_FIELDS)
        if unknown:
            raise InvalidClaim(f"unknown line field {sorted(unknown)[0]}", field=path)
        quantity = raw.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise InvalidClaim("quantity must be a positive whole number",
                               field=f"{path}.quantity")
        line = {name: raw.get(name) for name in LINE_FIELDS}
        line["quantity"] = quantity
        line["labels"] = list(raw.get("labels") or [])
        for name in ("unit_price", "amount"):
            value = line[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_AMOUNT):
                raise InvalidClaim(f"{name} must be a whole number >= 0 (minor units)",
                                   field=f"{path}.{name}")
        out.append(line)
    return out


def _line_in(line: Mapping[str, Any]) -> events.LineIn:
    return events.LineIn(
        sku=line.get("sku"), name=line.get("name"), category=line.get("category"),
        brand=line.get("brand"), labels=tuple(line.get("labels") or ()),
        quantity=int(line["quantity"]), unit_price=line.get("unit_price"),
        amount=line.get("amount"))


def _amount(lines: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for line in lines:
        if line.get("amount") is not None:
            total += int(line["amount"])
        elif line.get("unit_price") is not None:
            total += int(line["quantity"]) * int(line["unit_price"])
    return total


def _payload(claim: SalesClaim) -> dict[str, Any]:
    return {"claim_id": claim.id, "program_id": claim.program_id,
            "account_id": claim.account_id, "invoice_number": claim.invoice_number,
            "amount": claim.amount, "status": claim.status, "reason": claim.reason,
            "duplicate_of": claim.duplicate_of, "event_id": claim.event_id}


def submit(session: Session, tenant_id: str, program_id: str, *, account_id: str,
           invoice_number: str, invoice_date: datetime, seller: str,
           lines: Sequence[Mapping[str, Any]], proof_ref: str, user_id: str | None = None,
           currency: str | None = None, actor: str) -> SalesClaim:
    """Record a claim. A claim of an invoice already claimed (in any formatting, by any
    member) is stored as ``duplicate`` of the first and never earns."""
    program = tenants.get_program(session, tenant_id, program_id)
    account = members.get_account(session, tenant_id, account_id)
    members.refuse_erased(account, "account_id")  # an erased member claims nothing
    if user_id is not None and members.get_user(session, tenant_id, user_id).account_id \
            != account.id:
        raise InvalidClaim("the user belongs to another account", field="user_id")
    if invoice_date.tzinfo is None:
        raise InvalidClaim("invoice_date needs a time zone offset", field="invoice_date")
    key = domain.invoice_key(seller, invoice_number)
    keys = domain.invoice_keys(seller, invoice_number)
    if key.startswith("|") or key.endswith("|"):
        raise InvalidClaim("seller and invoice_number must have letters or digits",
                           field="invoice_number")
    if not proof_ref.strip():
        raise InvalidClaim("a claim needs a proof file reference", field="proof_ref")
    clean = _clean_lines(lines)
    if not clean:
        raise InvalidClaim("a claim needs at least one line", field="lines")
    window, sla = _settings(program)
    now = clock.now()
    if domain.outside_window(invoice_date, now, window):
        raise OutsideWindow(f"claims are accepted up to {window} days after the invoice date",
                            field="invoice_date")
    claim = SalesClaim(
        tenant_id=tenant_id, id=new_id("clm"), program_id=program.id, account_id=account.id,
        user_id=user_id, invoice_number=invoice_number, invoice_date=invoice_date,
        seller=seller, invoice_key=key, currency=currency or program.base_currency,
        amount=_amount(clean), lines=clean, proof_ref=proof_ref, status="submitted",
        duplicate_of=None, reason=None, submitted_by=actor, submitted_at=now,
        review_due_at=domain.review_due(now, sla), decided_by=None, decided_at=None,
        event_id=None)
    session.add(claim)
    session.flush()
    try:
        with session.begin_nested():
            for each in keys:  # sorted: concurrent claims take the rows in one order
                session.add(ClaimInvoiceKey(tenant_id=tenant_id, program_id=program.id,
                                            invoice_key=each, claim_id=claim.id,
                                            created_at=now))
                session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        first = session.scalar(select(ClaimInvoiceKey.claim_id).where(
            ClaimInvoiceKey.tenant_id == tenant_id, ClaimInvoiceKey.program_id == program.id,
            ClaimInvoiceKey.invoice_key.in_(keys)).order_by(ClaimInvoiceKey.created_at,
                                                            ClaimInvoiceKey.claim_id).limit(1))
        claim.status = "duplicate"
        claim.duplicate_of = first
        claim.reason = f"invoice already claimed by {first}"
        claim.decided_by = "system"
        claim.decided_at = now
        session.flush()
    audit.record(session, tenant_id, actor=actor, action=f"claim.{claim.status}",
                 object_type="sales_claim", object_id=claim.id, after=_payload(claim))
    outbox.emit(session, tenant_id, f"claim.{claim.status}", _payload(claim))
    return claim


def get_claim(session: Session, tenant_id: str, claim_id: str, *,
              lock: bool = False) -> SalesClaim:
    query = select(SalesClaim).where(SalesClaim.tenant_id == tenant_id,
                                     SalesClaim.id == claim_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    claim = session.scalars(query).first()
    if claim is None:
        raise ClaimNotFound(f"claim {claim_id} not found", field="claim_id")
    return claim


def list_claims(session: Session, tenant_id: str, program_id: str, *,
                status: str | None = None, account_id: str | None = None,
                overdue: bool = False, limit: int = 50,
                after: str | None = None) -> list[SalesClaim]:
    """The review queue (``status=submitted``, oldest deadline first by id); ``overdue``
    keeps claims past their review deadline. Returns up to ``limit + 1``."""
    tenants.get_program(session, tenant_id, program_id)  # another tenant's program: not found
    query = select(SalesClaim).where(SalesClaim.tenant_id == tenant_id,
                                     SalesClaim.program_id == program_id)
    if status is not None:
        query = query.where(SalesClaim.status == status)
    if account_id is not None:
        query = query.where(SalesClaim.account_id == account_id)
    if overdue:
        query = query.where(SalesClaim.status == "submitted",
                            SalesClaim.review_due_at < clock.now())
    if after:
        query = query.where(SalesClaim.id > after)
    return list(session.scalars(query.order_by(SalesClaim.id).limit(limit + 1)))


def _pending(session: Session, tenant_id: str, claim_id: str, actor: str) -> SalesClaim:
    claim = get_claim(session, tenant_id, claim_id, lock=True)
    if claim.status != "submitted":
        raise ClaimNotPending(f"claim {claim_id} is {claim.status}", field="claim_id")
    if actor == claim.submitted_by:
        raise SameReviewer("the reviewer cannot be the submitter", field="actor")
    return claim


def approve(session: Session, tenant_id: str, claim_id: str, *, actor: str) -> SalesClaim:
    """Approve: the claim becomes a purchase event (source ``claim``) and earns through the
    rules in force at the invoice date; a ``user_id`` lets rules pay the rep (SPIFF). A claim
    of a member erased since it was submitted is refused like its event (``409
    account_erased``; the claim stays submitted for a rejection)."""
    claim = _pending(session, tenant_id, claim_id, actor)
    result = events.ingest(session, tenant_id, claim.program_id, events.EventData(
        external_id=claim.id, kind="purchase", source="claim", account_id=claim.account_id,
        reported_by="member", user_id=claim.user_id, occurred_at=claim.invoice_date,
        currency=claim.currency, channel="claim",
        attributes={"invoice_number": claim.invoice_number, "seller": claim.seller},
        lines=tuple(_line_in(line) for line in claim.lines)), actor=actor)
    claim.event_id = result.event.id
    # the leaderboards' "claims" metric: one approved claim, on its invoice's local day
    engagement.count_claim(session, tenant_id, claim.program_id, claim.account_id,
                           claim.invoice_date)
    return _decide(session, tenant_id, claim, "approved", actor, None)


def reject(session: Session, tenant_id: str, claim_id: str, *, actor: str,
           reason: str) -> SalesClaim:
    """Reject with a reason; the invoice may be claimed again (corrected)."""
    if not reason.strip():
        raise InvalidClaim("a rejection needs a reason", field="reason")
    claim = _pending(session, tenant_id, claim_id, actor)
    keys = {claim.invoice_key, *domain.invoice_keys(claim.seller, claim.invoice_number)}
    session.execute(delete(ClaimInvoiceKey).where(
        ClaimInvoiceKey.tenant_id == tenant_id, ClaimInvoiceKey.program_id == claim.program_id,
        ClaimInvoiceKey.invoice_key.in_(sorted(keys)), ClaimInvoiceKey.claim_id == claim.id))
    return _decide(session, tenant_id, claim, "rejected", actor, reason)


def _decide(session: Session, tenant_id: str, claim: SalesClaim, status: str, actor: str,
            reason: str | None) -> SalesClaim:
    claim.status = status
    claim.reason = reason
    claim.decided_by = actor
    claim.decided_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action=f"claim.{status}",
                 object_type="sales_claim", object_id=claim.id, before={"status": "submitted"},
                 after=_payload(claim))
    outbox.emit(session, tenant_id, f"claim.{status}", _payload(claim))
    return claim
