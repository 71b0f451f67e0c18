"""Co-marketing funds through the ledger.

Accounts (all in the fund's money unit): ``mdf_budget`` (the program's source), the fund
``mdf:<fund>`` and one allocation per partner ``mdf:<fund>:<account>``, both ``no_overdraw``.
Allocating moves money fund → allocation (so allocations never exceed the budget); a
pre-approval or a claim holds money allocation → the partner's money wallet (so claims never
exceed the allocation, whatever the concurrency); approval posts the hold (the reimbursement
lands in the wallet, where payouts can pay it); rejection and expiry release it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, events, ledger, members, tenants
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique, is_unique_violation
from allegiance.kit.errors import AllegianceError
from allegiance.kit.ids import new_id
from allegiance.mdf import domain
from allegiance.mdf.errors import (
    DuplicateFund,
    FundClosed,
    FundExhausted,
    FundNotFound,
    InvalidFund,
    InvalidMdfClaim,
    MdfClaimNotFound,
    MdfClaimState,
)
from allegiance.mdf.models import MdfAllocation, MdfClaim, MdfFund


def _formula(data: dict[str, Any]) -> domain.Formula:
    try:
        return domain.Formula.parse(data)
    except domain.FormulaError as exc:
        raise InvalidFund(str(exc), field=exc.field) from exc


def _accrual_ratio(percent: str) -> tuple[int, int]:
    try:
        value = Decimal(percent)
    except InvalidOperation as exc:
        raise InvalidFund("accrual_percent must be a number", field="accrual_percent") from exc
    if not value.is_finite() or not 0 < value <= 100:
        raise InvalidFund("accrual_percent must be above 0 and at most 100",
                          field="accrual_percent")
    num, den = value.as_integer_ratio()
    return num, den * 100


def _source(session: Session, fund: MdfFund) -> str:
    return ledger.program_account(session, fund.tenant_id, fund.program_id, fund.unit_id,
                                  "mdf_budget").id


def create_fund(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                unit_id: str, budget: int, period_start: datetime, period_end: datetime,
                claim_deadline: datetime, formula: dict[str, Any] | None = None,
                accrual_percent: str | None = None, actor: str) -> MdfFund:
    """A fund for one period; its budget is posted from the program's ``mdf_budget``."""
    tenants.get_program(session, tenant_id, program_id)
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.program_id != program_id or unit.kind != "money":
        raise InvalidFund("a fund holds a money unit of its program", field="unit_id")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise InvalidFund("budget must be a whole number >= 0", field="budget")
    if not period_start < period_end <= claim_deadline:
        raise InvalidFund("need period_start < period_end <= claim_deadline",
                          field="claim_deadline")
    _formula(formula or {})
    if accrual_percent is not None:
        _accrual_ratio(accrual_percent)
    fund_id = new_id("mdf")
    account = ledger.program_account(session, tenant_id, program_id, unit_id, f"mdf:{fund_id}",
                                     normal="credit", no_overdraw=True)
    fund = MdfFund(tenant_id=tenant_id, id=fund_id, program_id=program_id, code=code,
                   name=name, unit_id=unit_id, budget=budget, period_start=period_start,
                   period_end=period_end, claim_deadline=claim_deadline,
                   accrual_percent=accrual_percent, formula=dict(formula or {}),
                   ledger_account_id=account.id, status="open", created_at=clock.now())
    add_unique(session, fund, DuplicateFund(f"fund {code} exists in this program", field="code"))
    if budget:
        ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=program_id, kind="mdf_budget", source_type="mdf_fund",
            source_id=fund.id, entry_key=f"mdf-budget:{fund.id}", actor=actor,
            lines=(ledger.Line(_source(session, fund), unit_id, ledger.Side.DEBIT, budget),
                   ledger.Line(account.id, unit_id, ledger.Side.CREDIT, budget))))
    audit.record(session, tenant_id, actor=actor, action="mdf_fund.create",
                 object_type="mdf_fund", object_id=fund.id,
                 after={"code": code, "budget": budget, "unit_id": unit_id})
    return fund


def get_fund(session: Session, tenant_id: str, fund_id: str) -> MdfFund:
    fund = session.get(MdfFund, (tenant_id, fund_id))
    if fund is None:
        raise FundNotFound(f"fund {fund_id} not found", field="fund_id")
    return fund


def _open(fund: MdfFund, now: datetime) -> None:
    if fund.status != "open" or now >= fund.claim_deadline:
        raise FundClosed(f"fund {fund.code} is closed", field="fund_id")


def _allocation(session: Session, fund: MdfFund, account_id: str) -> MdfAllocation:
    found = session.scalars(select(MdfAllocation).where(
        MdfAllocation.tenant_id == fund.tenant_id, MdfAllocation.fund_id == fund.id,
        MdfAllocation.account_id == account_id)).first()
    if found is not None:
        return found
    members.get_account(session, fund.tenant_id, account_id)
    account = ledger.program_account(session, fund.tenant_id, fund.program_id, fund.unit_id,
                                     f"mdf:{fund.id}:{account_id}", normal="credit",
                                     no_overdraw=True)
    row = MdfAllocation(tenant_id=fund.tenant_id, id=new_id("mda"), fund_id=fund.id,
                        account_id=account_id, ledger_account_id=account.id,
                        created_at=clock.now())
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        found = session.scalars(select(MdfAllocation).where(
            MdfAllocation.tenant_id == fund.tenant_id, MdfAllocation.fund_id == fund.id,
            MdfAllocation.account_id == account_id)).first()
        if found is None:
            raise
        return found
    return row


def allocate(session: Session, tenant_id: str, fund_id: str, account_id: str, amount: int, *,
             actor: str, entry_key: str | None = None) -> MdfAllocation:
    """Move ``amount`` of the fund to a partner; refused beyond what the fund has left."""
    fund = get_fund(session, tenant_id, fund_id)
    _open(fund, clock.now())
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidFund("amount must be a positive whole number", field="amount")
    allocation = _allocation(session, fund, account_id)
    try:
        ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=fund.program_id, kind="mdf_allocate", source_type="mdf_fund",
            source_id=fund.id, entry_key=entry_key, actor=actor,
            lines=(ledger.Line(fund.ledger_account_id, fund.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(allocation.ledger_account_id, fund.unit_id, ledger.Side.CREDIT,
                               amount))))
    except AllegianceError as exc:
        if exc.code == "insufficient_funds":
            raise FundExhausted(f"fund {fund.code} has less than {amount} left",
                                field="amount") from exc
        raise
    audit.record(session, tenant_id, actor=actor, action="mdf_fund.allocate",
                 object_type="mdf_allocation", object_id=allocation.id,
                 after={"account_id": account_id, "amount": amount})
    return allocation


def accrue(session: Session, tenant_id: str, fund_id: str, *, actor: str = "job:mdf") -> int:
    """Top up each partner's allocation to ``accrual_percent`` of its net purchases in the
    fund's period (never down: returns after an allocation are absorbed by the fund).
    Returns the amount allocated by this run."""
    fund = get_fund(session, tenant_id, fund_id)
    if fund.accrual_percent is None or fund.status != "open":
        return 0
    num, den = _accrual_ratio(fund.accrual_percent)
    volumes = events.purchase_volume(session, tenant_id, fund.program_id, fund.period_start,
                                     fund.period_end)
    total = 0
    for account_id in sorted(volumes):
        target = domain.accrual_target(volumes[account_id], num, den)
        allocation = _allocation(session, fund, account_id)
        have = ledger.get_account(session, tenant_id, allocation.ledger_account_id)
        missing = target - have.credits_posted
        if missing <= 0:
            continue
        missing = min(missing, ledger.balance_of(
            ledger.get_account(session, tenant_id, fund.ledger_account_id)).available)
        if missing <= 0:
            break
        allocate(session, tenant_id, fund.id, account_id, missing, actor=actor,
                 entry_key=f"mdf-accrual:{allocation.id}:{target}")
        total += missing
    return total


def _hold(session: Session, fund: MdfFund, allocation: MdfAllocation, claim: MdfClaim,
          amount: int, step: str) -> str:
    wallet = ledger.wallet(session, fund.tenant_id, fund.program_id, fund.unit_id, "account",
                           allocation.account_id)
    try:
        hold, _ = ledger.create_hold(session, fund.tenant_id, ledger.HoldRequest(
            program_id=fund.program_id, debit_account_id=allocation.ledger_account_id,
            credit_account_id=wallet.id, unit_id=fund.unit_id, amount=amount,
            kind="mdf_reimbursement", source_type="mdf_claim", source_id=claim.id,
            hold_key=f"mdf-claim:{claim.id}:{step}", memo=f"co-marketing: {claim.activity}"))
    except AllegianceError as exc:
        if exc.code == "insufficient_funds":
            raise FundExhausted("the partner's allocation has not enough left",
                                field="amount") from exc
        raise
    return hold.id


def request(session: Session, tenant_id: str, fund_id: str, *, account_id: str, activity: str,
            estimated_cost: int, media: str | None = None, actor: str) -> MdfClaim:
    """Ask for pre-approval of an activity (the estimate is not held until approved)."""
    fund = get_fund(session, tenant_id, fund_id)
    _open(fund, clock.now())
    if isinstance(estimated_cost, bool) or not isinstance(estimated_cost, int) \
            or estimated_cost <= 0:
        raise InvalidMdfClaim("estimated_cost must be a positive whole number",
                              field="estimated_cost")
    allocation = _allocation(session, fund, account_id)
    claim = _new(fund, allocation, activity, media, actor, "requested")
    claim.estimated_cost = estimated_cost
    session.add(claim)
    session.flush()
    _log(session, claim, actor, None)
    return claim


def _new(fund: MdfFund, allocation: MdfAllocation, activity: str, media: str | None,
         actor: str, status: str) -> MdfClaim:
    if not activity.strip():
        raise InvalidMdfClaim("describe the activity", field="activity")
    return MdfClaim(
        tenant_id=fund.tenant_id, id=new_id("mdc"), fund_id=fund.id, allocation_id=allocation.id,
        account_id=allocation.account_id, activity=activity, media=media, estimated_cost=None,
        preapproved_amount=None, actual_cost=None, other_brands=0, proof_ref=None,
        invoice_ref=None, amount=0, status=status, hold_id=None, entry_id=None, reason=None,
        created_by=actor, created_at=clock.now(), claimed_at=None, decided_by=None,
        decided_at=None)


def get_claim(session: Session, tenant_id: str, claim_id: str, *,
              lock: bool = False) -> MdfClaim:
    query = select(MdfClaim).where(MdfClaim.tenant_id == tenant_id, MdfClaim.id == claim_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    claim = session.scalars(query).first()
    if claim is None:
        raise MdfClaimNotFound(f"co-marketing claim {claim_id} not found", field="claim_id")
    return claim


def _state(claim: MdfClaim, *allowed: str) -> None:
    if claim.status not in allowed:
        raise MdfClaimState(f"the claim is {claim.status}", field="claim_id")


def preapprove(session: Session, tenant_id: str, claim_id: str, *, actor: str,
               amount: int | None = None) -> MdfClaim:
    """Approve a request: hold ``amount`` (default: the formula applied to the estimate with
    no other brand) on the partner's allocation."""
    claim = get_claim(session, tenant_id, claim_id, lock=True)
    _state(claim, "requested")
    fund = get_fund(session, tenant_id, claim.fund_id)
    _open(fund, clock.now())
    assert claim.estimated_cost is not None
    ceiling = amount if amount is not None else _formula(fund.formula).reimbursement(
        claim.estimated_cost)
    if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling <= 0:
        raise InvalidMdfClaim("the pre-approved amount must be positive", field="amount")
    allocation = session.get(MdfAllocation, (tenant_id, claim.allocation_id))
    assert allocation is not None
    claim.hold_id = _hold(session, fund, allocation, claim, ceiling, "preapproval")
    claim.preapproved_amount = ceiling
    return _decided(session, claim, "preapproved", actor, None)


def submit_claim(session: Session, tenant_id: str, fund_id: str, *, account_id: str,
                 actual_cost: int, proof_ref: str, invoice_ref: str, other_brands: int = 0,
                 activity: str | None = None, media: str | None = None,
                 claim_id: str | None = None, actor: str) -> MdfClaim:
    """Claim a reimbursement with proof of performance and invoice: for a pre-approved
    request (``claim_id``) up to its pre-approved amount, else directly (the amount is held
    on the allocation now, or the claim is refused)."""
    fund = get_fund(session, tenant_id, fund_id)
    _open(fund, clock.now())
    for name, value in (("actual_cost", actual_cost), ("other_brands", other_brands)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidMdfClaim(f"{name} must be a whole number >= 0", field=name)
    if not proof_ref.strip() or not invoice_ref.strip():
        raise InvalidMdfClaim("a claim needs proof of performance and an invoice",
                              field="proof_ref")
    amount = _formula(fund.formula).reimbursement(actual_cost, other_brands)
    if claim_id is not None:
        claim = get_claim(session, tenant_id, claim_id, lock=True)
        if claim.fund_id != fund.id or claim.account_id != account_id:
            raise MdfClaimNotFound(f"co-marketing claim {claim_id} not found", field="claim_id")
        _state(claim, "preapproved")
        assert claim.preapproved_amount is not None
        amount = min(amount, claim.preapproved_amount)
    else:
        allocation = _allocation(session, fund, account_id)
        claim = _new(fund, allocation, activity or "", media, actor, "claimed")
        session.add(claim)
        session.flush()
        if amount <= 0:
            raise InvalidMdfClaim("nothing to reimburse", field="actual_cost")
        claim.hold_id = _hold(session, fund, allocation, claim, amount, "claim")
    claim.actual_cost = actual_cost
    claim.other_brands = other_brands
    claim.proof_ref = proof_ref
    claim.invoice_ref = invoice_ref
    claim.amount = amount
    claim.status = "claimed"
    claim.claimed_at = clock.now()
    session.flush()
    _log(session, claim, actor, None)
    return claim


def approve_claim(session: Session, tenant_id: str, claim_id: str, *,
                  actor: str) -> MdfClaim:
    """Pay a claim: its amount moves from the allocation into the partner's money wallet;
    the rest of a pre-approval is released."""
    claim = get_claim(session, tenant_id, claim_id, lock=True)
    _state(claim, "claimed")
    assert claim.hold_id is not None
    if claim.amount > 0:
        hold = ledger.post_hold(session, tenant_id, claim.hold_id, claim.amount, actor=actor)
        claim.entry_id = hold.resolved_entry_id
    else:
        ledger.void_hold(session, tenant_id, claim.hold_id, actor=actor)
    return _decided(session, claim, "paid", actor, None)


def reject_claim(session: Session, tenant_id: str, claim_id: str, *, actor: str,
                 reason: str) -> MdfClaim:
    if not reason.strip():
        raise InvalidMdfClaim("a rejection needs a reason", field="reason")
    claim = get_claim(session, tenant_id, claim_id, lock=True)
    _state(claim, "requested", "preapproved", "claimed")
    if claim.hold_id is not None:
        ledger.void_hold(session, tenant_id, claim.hold_id, actor=actor)
    return _decided(session, claim, "rejected", actor, reason)


def _decided(session: Session, claim: MdfClaim, status: str, actor: str,
             reason: str | None) -> MdfClaim:
    before = claim.status
    claim.status = status
    claim.reason = reason
    claim.decided_by = actor
    claim.decided_at = clock.now()
    session.flush()
    _log(session, claim, actor, before)
    return claim


def _log(session: Session, claim: MdfClaim, actor: str, before: str | None) -> None:
    payload = {"claim_id": claim.id, "fund_id": claim.fund_id, "account_id": claim.account_id,
               "status": claim.status, "amount": claim.amount, "reason": claim.reason}
    audit.record(session, claim.tenant_id, actor=actor, action=f"mdf_claim.{claim.status}",
                 object_type="mdf_claim", object_id=claim.id,
                 before=None if before is None else {"status": before}, after=payload)
    outbox.emit(session, claim.tenant_id, f"mdf_claim.{claim.status}", payload)


def list_claims(session: Session, tenant_id: str, fund_id: str, *, status: str | None = None,
                account_id: str | None = None, limit: int = 50,
                after: str | None = None) -> list[MdfClaim]:
    query = select(MdfClaim).where(MdfClaim.tenant_id == tenant_id, MdfClaim.fund_id == fund_id)
    if status is not None:
        query = query.where(MdfClaim.status == status)
    if account_id is not None:
        query = query.where(MdfClaim.account_id == account_id)
    if after:
        query = query.where(MdfClaim.id > after)
    return list(session.scalars(query.order_by(MdfClaim.id).limit(limit + 1)))


def partner_view(session: Session, tenant_id: str, fund_id: str,
                 account_id: str) -> domain.PartnerView:
    """Allocated, committed (held), claimed (awaiting payment), paid, expired; remaining."""
    fund = get_fund(session, tenant_id, fund_id)
    allocation = session.scalars(select(MdfAllocation).where(
        MdfAllocation.tenant_id == tenant_id, MdfAllocation.fund_id == fund.id,
        MdfAllocation.account_id == account_id)).first()
    if allocation is None:
        return domain.PartnerView(0, 0, 0, 0, 0)
    account = ledger.get_account(session, tenant_id, allocation.ledger_account_id)
    sums: dict[str, int] = {
        str(status): int(total) for status, total in session.execute(
            select(MdfClaim.status, func.coalesce(func.sum(MdfClaim.amount), 0))
            .where(MdfClaim.tenant_id == tenant_id, MdfClaim.allocation_id == allocation.id,
                   MdfClaim.status.in_(("claimed", "paid")))
            .group_by(MdfClaim.status))}
    paid = int(sums.get("paid", 0))
    return domain.PartnerView(
        allocated=account.credits_posted, committed=account.debits_pending,
        claimed=int(sums.get("claimed", 0)), paid=paid,
        expired=account.debits_posted - paid)


def expire_funds(session: Session, *, limit: int = 100) -> int:
    """After a fund's claim deadline: release unclaimed pre-approvals and sweep what is left
    of the fund and of every allocation to ``mdf_expired``. Claims already submitted stay
    held for review. Returns the number of funds expired."""
    now = clock.now()
    due = list(session.scalars(select(MdfFund).where(
        MdfFund.status == "open", MdfFund.claim_deadline <= now)
        .order_by(MdfFund.tenant_id, MdfFund.id).limit(limit).with_for_update()))
    for fund in due:
        stale = session.scalars(select(MdfClaim).where(
            MdfClaim.tenant_id == fund.tenant_id, MdfClaim.fund_id == fund.id,
            MdfClaim.status.in_(("requested", "preapproved"))))
        for claim in list(stale):
            if claim.hold_id is not None:
                ledger.void_hold(session, fund.tenant_id, claim.hold_id, actor="job:mdf")
            _decided(session, claim, "expired", "job:mdf", "claim deadline passed")
        expired = ledger.program_account(session, fund.tenant_id, fund.program_id,
                                         fund.unit_id, "mdf_expired", normal="credit")
        allocations = session.scalars(select(MdfAllocation.ledger_account_id).where(
            MdfAllocation.tenant_id == fund.tenant_id, MdfAllocation.fund_id == fund.id))
        accounts = [fund.ledger_account_id, *allocations]
        for account_id in accounts:
            left = ledger.balance_of(ledger.get_account(session, fund.tenant_id,
                                                        account_id)).available
            if left > 0:
                ledger.post_entry(session, fund.tenant_id, ledger.EntryRequest(
                    program_id=fund.program_id, kind="mdf_expiry", source_type="mdf_fund",
                    source_id=fund.id, entry_key=f"mdf-expiry:{account_id}", actor="job:mdf",
                    lines=(ledger.Line(account_id, fund.unit_id, ledger.Side.DEBIT, left),
                           ledger.Line(expired.id, fund.unit_id, ledger.Side.CREDIT, left))))
        fund.status = "expired"
        session.flush()
    return len(due)
