"""Payout batches of withdrawable money: each member wallet whose available balance reaches
the unit's minimum is held (pending) into the program's ``payouts`` account; finance pays
from the batch file (CSV or JSON) and reports each item paid (the hold is posted) or failed
(the hold is released: the money is back in the wallet). The batch reconciles with the
ledger to the cent: its paid total is what the ``payouts`` account received from it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, ledger, members, tenants
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id
from allegiance.kit.money import currency_exponent
from allegiance.payouts import domain
from allegiance.payouts.errors import (
    BatchNotFound,
    DuplicateBatch,
    InvalidPayout,
    ItemNotFound,
    ItemSettled,
    NotWithdrawable,
)
from allegiance.payouts.models import PayoutBatch, PayoutItem, PayoutPolicy


def set_policy(session: Session, tenant_id: str, unit_id: str, *, withdrawable: bool,
               minimum: int = 0, actor: str) -> PayoutPolicy:
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.kind != "money":
        raise InvalidPayout("only money units are paid out", field="unit_id")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise InvalidPayout("minimum must be a whole number >= 0", field="minimum")
    row = session.get(PayoutPolicy, (tenant_id, unit_id))
    before = None if row is None else {"withdrawable": row.withdrawable,
                                       "minimum": row.minimum}
    if row is None:
        row = PayoutPolicy(tenant_id=tenant_id, unit_id=unit_id, withdrawable=withdrawable,
                           minimum=minimum, updated_at=clock.now())
        session.add(row)
    else:
        row.withdrawable = withdrawable
        row.minimum = minimum
        row.updated_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="payout_policy.set",
                 object_type="unit", object_id=unit_id, before=before,
                 after={"withdrawable": withdrawable, "minimum": minimum})
    return row


def policy_of(session: Session, tenant_id: str, unit_id: str) -> PayoutPolicy:
    """The unit's policy; a money unit without one is store credit (never paid out)."""
    row = session.get(PayoutPolicy, (tenant_id, unit_id))
    if row is None:
        tenants.get_unit(session, tenant_id, unit_id)
        return PayoutPolicy(tenant_id=tenant_id, unit_id=unit_id, withdrawable=False,
                            minimum=0, updated_at=clock.now())
    return row


def create_batch(session: Session, tenant_id: str, program_id: str, unit_id: str, *,
                 label: str, actor: str) -> PayoutBatch:
    """Hold every payable wallet of a withdrawable unit into a new batch."""
    tenants.get_program(session, tenant_id, program_id)
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.program_id != program_id:
        raise InvalidPayout("the unit belongs to another program", field="unit_id")
    policy = policy_of(session, tenant_id, unit_id)
    if not policy.withdrawable:
        raise NotWithdrawable("this unit is store credit: it is spent, never paid out",
                              field="unit_id")
    batch = PayoutBatch(tenant_id=tenant_id, id=new_id("pob"), program_id=program_id,
                        unit_id=unit_id, label=label, status="open", total=0, items=0,
                        created_by=actor, created_at=clock.now(), closed_at=None)
    add_unique(session, batch, DuplicateBatch(f"a batch {label} exists for this unit", field="label"))
    target = ledger.program_account(session, tenant_id, program_id, unit_id, "payouts",
                                    normal="credit")
    wallets = session.scalars(select(ledger.LedgerAccount).where(
        ledger.LedgerAccount.tenant_id == tenant_id,
        ledger.LedgerAccount.program_id == program_id,
        ledger.LedgerAccount.unit_id == unit_id,
        ledger.LedgerAccount.owner_type.in_(("account", "user")),
        ledger.LedgerAccount.purpose == "wallet").order_by(ledger.LedgerAccount.id))
    now = clock.now()
    for wallet in list(wallets):
        amount = domain.payable(ledger.balance_of(wallet).available, policy.minimum)
        if amount <= 0:
            continue
        hold, _ = ledger.create_hold(session, tenant_id, ledger.HoldRequest(
            program_id=program_id, debit_account_id=wallet.id, credit_account_id=target.id,
            unit_id=unit_id, amount=amount, kind="payout", source_type="payout_batch",
            source_id=batch.id, hold_key=f"payout:{batch.id}:{wallet.id}",
            memo=f"payout {label}"))
        session.add(PayoutItem(
            tenant_id=tenant_id, id=new_id("poi"), batch_id=batch.id, wallet_id=wallet.id,
            owner_type=wallet.owner_type, owner_id=wallet.owner_id, amount=amount,
            status="pending", hold_id=hold.id, entry_id=None, reference=None,
            failure_reason=None, updated_at=now))
        batch.total += amount
        batch.items += 1
    if batch.items == 0:
        batch.status = "closed"
        batch.closed_at = now
    session.flush()
    payload = {"batch_id": batch.id, "program_id": program_id, "unit_id": unit_id,
               "label": label, "items": batch.items, "total": batch.total}
    audit.record(session, tenant_id, actor=actor, action="payout_batch.create",
                 object_type="payout_batch", object_id=batch.id, after=payload)
    outbox.emit(session, tenant_id, "payout_batch.created", payload)
    return batch


def get_batch(session: Session, tenant_id: str, batch_id: str) -> PayoutBatch:
    batch = session.get(PayoutBatch, (tenant_id, batch_id))
    if batch is None:
        raise BatchNotFound(f"payout batch {batch_id} not found", field="batch_id")
    return batch


def items(session: Session, tenant_id: str, batch_id: str) -> list[PayoutItem]:
    get_batch(session, tenant_id, batch_id)
    return list(session.scalars(select(PayoutItem).where(
        PayoutItem.tenant_id == tenant_id, PayoutItem.batch_id == batch_id)
        .order_by(PayoutItem.id)))


def item_program(session: Session, tenant_id: str, item_id: str) -> str:
    """The program of a payout item (for per-program API keys)."""
    row = session.get(PayoutItem, (tenant_id, item_id))
    if row is None:
        raise ItemNotFound(f"payout item {item_id} not found", field="item_id")
    return get_batch(session, tenant_id, row.batch_id).program_id


def _item(session: Session, tenant_id: str, item_id: str) -> PayoutItem:
    row = session.scalars(select(PayoutItem).where(
        PayoutItem.tenant_id == tenant_id, PayoutItem.id == item_id)
        .with_for_update().execution_options(populate_existing=True)).first()
    if row is None:
        raise ItemNotFound(f"payout item {item_id} not found", field="item_id")
    if row.status != "pending":
        raise ItemSettled(f"the payout item is already {row.status}", field="item_id")
    return row


def mark_paid(session: Session, tenant_id: str, item_id: str, *, reference: str | None,
              actor: str) -> PayoutItem:
    row = _item(session, tenant_id, item_id)
    hold = ledger.post_hold(session, tenant_id, row.hold_id, actor=actor,
                            memo=f"paid {reference or ''}".strip())
    row.entry_id = hold.resolved_entry_id
    return _settle(session, tenant_id, row, "paid", actor, reference=reference)


def mark_failed(session: Session, tenant_id: str, item_id: str, *, reason: str,
                actor: str) -> PayoutItem:
    """The payment bounced: the money goes back to the wallet."""
    if not reason.strip():
        raise InvalidPayout("say why the payment failed", field="reason")
    row = _item(session, tenant_id, item_id)
    ledger.void_hold(session, tenant_id, row.hold_id, actor=actor)
    return _settle(session, tenant_id, row, "failed", actor, reason=reason)


def _settle(session: Session, tenant_id: str, row: PayoutItem, status: str, actor: str, *,
            reference: str | None = None, reason: str | None = None) -> PayoutItem:
    row.status = status
    row.reference = reference
    row.failure_reason = reason
    row.updated_at = clock.now()
    session.flush()
    pending = session.scalar(select(PayoutItem.id).where(
        PayoutItem.tenant_id == tenant_id, PayoutItem.batch_id == row.batch_id,
        PayoutItem.status == "pending").limit(1))
    if pending is None:
        batch = get_batch(session, tenant_id, row.batch_id)
        batch.status = "closed"
        batch.closed_at = clock.now()
        session.flush()
    payload = {"item_id": row.id, "batch_id": row.batch_id, "owner_type": row.owner_type,
               "owner_id": row.owner_id, "amount": row.amount, "status": status,
               "reference": reference, "reason": reason}
    audit.record(session, tenant_id, actor=actor, action=f"payout.{status}",
                 object_type="payout_item", object_id=row.id, after=payload)
    outbox.emit(session, tenant_id, f"payout.{status}", payload)
    return row


def rows(session: Session, tenant_id: str, batch_id: str) -> list[domain.Row]:
    """The batch as the finance file's rows."""
    batch = get_batch(session, tenant_id, batch_id)
    unit = tenants.get_unit(session, tenant_id, batch.unit_id)
    currency = unit.currency or ""
    exponent = currency_exponent(currency) if currency else 0
    out = []
    for item in items(session, tenant_id, batch_id):
        if item.owner_type == "account":
            account = members.get_account(session, tenant_id, item.owner_id)
            number, name = account.member_number, account.name
        else:
            user = members.get_user(session, tenant_id, item.owner_id)
            account = members.get_account(session, tenant_id, user.account_id)
            number, name = account.member_number, user.name
        out.append(domain.Row(item.id, item.owner_type, item.owner_id, number, name, currency,
                              item.amount, exponent, item.status, item.reference or ""))
    return out
