"""Reversals (full or partial, tied to the original entry and line), transfers between
wallets, and manual adjustments with a second approver above the program's threshold."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit import clock
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.ledger import repository as repo
from allegiance.ledger.domain import Line, Side, split_for_shortfall
from allegiance.ledger.errors import (
    AdjustmentNotFound,
    AdjustmentNotPending,
    InvalidEntry,
    ReversalTooLarge,
    SameApprover,
)
from allegiance.ledger.models import Adjustment
from allegiance.ledger.service import (
    EntryRequest,
    EntryResult,
    get_account,
    get_entry,
    program_account,
    receivable,
)
from allegiance.ledger.single import post_entry


def reverse_entry(
    session: Session,
    tenant_id: str,
    entry_id: str,
    *,
    lines: Mapping[int, int] | None = None,
    entry_key: str | None = None,
    memo: str | None = None,
    actor: str | None = None,
    kind: str = "reversal",
    source_type: str | None = None,
    source_id: str | None = None,
) -> EntryResult:
    """Reverse ``lines`` ({line_no: amount}) of an entry, or everything not yet reversed.

    A member wallet that no longer holds the points (spent after earning) is taken down to
    its floor and the rest is booked to the member's receivable: a visible debt, never a
    silent loss.
    """
    original = get_entry(session, tenant_id, entry_id)
    repo.lock_entry(session, tenant_id, entry_id)
    postings = repo.postings_of(session, tenant_id, [entry_id])
    done = repo.reversed_so_far(session, tenant_id, entry_id)
    left = {p.line_no: p.amount - done.get(p.line_no, 0) for p in postings}
    if lines is None:
        wanted = {n: a for n, a in left.items() if a > 0}
        if not wanted:
            raise ReversalTooLarge("the entry is already fully reversed", field="entry_id")
    else:
        wanted = dict(lines)
        for line_no, amount in wanted.items():
            if line_no not in left:
                raise InvalidEntry(f"entry has no line {line_no}", field=f"lines.{line_no}")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise InvalidEntry("amounts must be positive integers", field=f"lines.{line_no}")
            if amount > left[line_no]:
                raise ReversalTooLarge(
                    f"line {line_no} has {left[line_no]} left to reverse", field=f"lines.{line_no}"
                )
    by_line = {p.line_no: p for p in postings}
    out: list[Line] = []
    room: dict[str, tuple[int, int]] = {}  # wallet -> (available left, floor) as lines take it
    for line_no in sorted(wanted):
        posting = by_line[line_no]
        amount = wanted[line_no]
        opposite = Side.CREDIT if posting.side == "D" else Side.DEBIT
        account = get_account(session, tenant_id, posting.account_id)
        if opposite is Side.DEBIT and account.owner_type != "program" and account.purpose == "wallet":
            if account.id not in room:
                room[account.id] = repo.available_and_floor(session, tenant_id, account.id)
            available, floor = room[account.id]
            take, shortfall = split_for_shortfall(amount, available, floor)
            room[account.id] = (available - take, floor)
            if take:
                out.append(Line(account.id, posting.unit_id, Side.DEBIT, take, line_no))
            if shortfall:
                debt = receivable(session, tenant_id, original.program_id, posting.unit_id,
                                  account.owner_type, account.owner_id)
                out.append(Line(debt.id, posting.unit_id, Side.DEBIT, shortfall, line_no))
        else:
            out.append(Line(posting.account_id, posting.unit_id, opposite, amount, line_no))
    return post_entry(
        session, tenant_id,
        EntryRequest(
            program_id=original.program_id, kind=kind, lines=tuple(out),
            source_type=source_type or original.source_type,
            source_id=source_id or original.source_id,
            entry_key=entry_key, memo=memo, actor=actor, reverses_entry_id=original.id,
        ),
    )


def transfer(
    session: Session,
    tenant_id: str,
    *,
    from_wallet_id: str,
    to_wallet_id: str,
    amount: int,
    entry_key: str | None = None,
    memo: str | None = None,
    actor: str | None = None,
    kind: str = "transfer",
) -> EntryResult:
    """Move points between two wallets of the same program and unit; lots keep their age."""
    source = get_account(session, tenant_id, from_wallet_id)
    target = get_account(session, tenant_id, to_wallet_id)
    for field_name, account in (("from_wallet_id", source), ("to_wallet_id", target)):
        if account.owner_type == "program" or account.purpose != "wallet":
            raise InvalidEntry("transfers move between member wallets", field=field_name)
    if source.id == target.id:
        raise InvalidEntry("a wallet cannot transfer to itself", field="to_wallet_id")
    if source.program_id != target.program_id or source.unit_id != target.unit_id:
        raise InvalidEntry("both wallets must hold the same unit", field="to_wallet_id")
    unit = tenants.get_unit(session, tenant_id, source.unit_id)
    if not unit.transferable and kind == "transfer":
        raise InvalidEntry(f"unit {unit.code} is not transferable", field="from_wallet_id")
    return post_entry(
        session, tenant_id,
        EntryRequest(
            program_id=source.program_id, kind=kind, entry_key=entry_key, memo=memo,
            actor=actor, inherit_lots=True,
            lines=(
                Line(source.id, source.unit_id, Side.DEBIT, amount),
                Line(target.id, target.unit_id, Side.CREDIT, amount),
            ),
        ),
    )


def request_adjustment(
    session: Session,
    tenant_id: str,
    *,
    wallet_id: str,
    amount: int,
    reason: str,
    requested_by: str,
) -> Adjustment:
    """A manual credit (amount > 0) or debit (< 0) with a reason. Above the program's
    threshold it waits for a second approver; otherwise it posts at once."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise ValidationFailed("amount must be a non-zero integer", field="amount")
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required", field="reason")
    account = get_account(session, tenant_id, wallet_id)
    if account.owner_type == "program" or account.purpose != "wallet":
        raise InvalidEntry("adjustments apply to member wallets", field="wallet_id")
    program = tenants.get_program(session, tenant_id, account.program_id)
    threshold = program.adjustment_approval_threshold
    needs_approval = threshold is not None and abs(amount) > threshold
    adjustment = Adjustment(
        tenant_id=tenant_id, id=new_id("adj"), program_id=account.program_id,
        wallet_id=wallet_id, amount=amount, reason=reason.strip(),
        status="pending_approval" if needs_approval else "posted",
        requested_by=requested_by, decided_by=None, decision_reason=None, entry_id=None,
        created_at=clock.now(), decided_at=None,
    )
    session.add(adjustment)
    session.flush()
    if not needs_approval:
        _post_adjustment(session, tenant_id, adjustment)
    return adjustment


def get_adjustment(session: Session, tenant_id: str, adjustment_id: str) -> Adjustment:
    adjustment = repo.get_adjustment(session, tenant_id, adjustment_id)
    if adjustment is None:
        raise AdjustmentNotFound(f"adjustment {adjustment_id} not found", field="adjustment_id")
    return adjustment


def decide_adjustment(
    session: Session,
    tenant_id: str,
    adjustment_id: str,
    *,
    approve: bool,
    decided_by: str,
    reason: str | None = None,
) -> Adjustment:
    adjustment = get_adjustment(session, tenant_id, adjustment_id)
    if adjustment.status != "pending_approval":
        raise AdjustmentNotPending(f"adjustment is {adjustment.status}", field="adjustment_id")
    if decided_by == adjustment.requested_by:
        raise SameApprover("the second approver must not be the requester", field="decided_by")
    decided = repo.decide_adjustment_status(
        session, tenant_id, adjustment_id, "posted" if approve else "rejected",
        {"decided_by": decided_by, "decision_reason": reason, "decided_at": clock.now()},
    )
    if not decided:
        raise AdjustmentNotPending("the adjustment was decided meanwhile", field="adjustment_id")
    session.refresh(adjustment)
    if approve:
        _post_adjustment(session, tenant_id, adjustment)
    return adjustment


def _post_adjustment(session: Session, tenant_id: str, adjustment: Adjustment) -> None:
    account = get_account(session, tenant_id, adjustment.wallet_id)
    offset = program_account(session, tenant_id, account.program_id, account.unit_id, "adjustments")
    amount = abs(adjustment.amount)
    credit_wallet = adjustment.amount > 0
    lines = (
        Line(offset.id, account.unit_id, Side.DEBIT if credit_wallet else Side.CREDIT, amount),
        Line(account.id, account.unit_id, Side.CREDIT if credit_wallet else Side.DEBIT, amount),
    )
    result = post_entry(
        session, tenant_id,
        EntryRequest(
            program_id=account.program_id, kind="adjustment", lines=lines,
            source_type="adjustment", source_id=adjustment.id,
            entry_key=f"adjustment:{adjustment.id}", memo=adjustment.reason,
            actor=adjustment.decided_by or adjustment.requested_by,
        ),
    )
    adjustment.entry_id = result.entry_id
    session.flush()
