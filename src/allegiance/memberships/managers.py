"""Account managers and custom requests (Utinet's personal manager for large corporate
clients): an operator user is assigned to an account; the account asks for an item that is not
in the catalogue, its manager prices it in one of the program's units, the account accepts or
declines. Acceptance holds the price in the account's wallet (a ledger hold, like a reward that
needs approval); fulfilment posts it to the unit's ``redeemed`` account; cancelling an accepted
request voids the hold, so the points come back. Every change is audited and announced on the
outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, ledger, members, operators, tenants
from allegiance.kit import clock, outbox
from allegiance.kit.ids import new_id
from allegiance.memberships import domain
from allegiance.memberships.errors import (
    CustomRequestNotFound,
    InvalidCustomRequest,
    InvalidTransition,
    NoAccountManager,
    NotTheManager,
    QuoteExpired,
)
from allegiance.memberships.models import AccountManager, CustomRequest

# --- managers --------------------------------------------------------------------------------


def assign_manager(session: Session, tenant_id: str, account_id: str, operator_id: str, *,
                   actor: str) -> AccountManager:
    """Make an active operator user the account's manager (replacing any other)."""
    members.get_account(session, tenant_id, account_id)
    operator = operators.get_operator(session, tenant_id, operator_id)
    if operator.status != "active":
        raise InvalidCustomRequest("the operator user is disabled", field="operator_id")
    row = session.get(AccountManager, (tenant_id, account_id), with_for_update=True)
    before = None if row is None else {"operator_id": row.operator_id}
    now = clock.now()
    if row is None:
        row = AccountManager(tenant_id=tenant_id, account_id=account_id,
                             operator_id=operator_id, assigned_at=now, assigned_by=actor)
        session.add(row)
    else:
        row.operator_id, row.assigned_at, row.assigned_by = operator_id, now, actor
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="account_manager.assign",
                 object_type="account", object_id=account_id, before=before,
                 after={"operator_id": operator_id})
    outbox.emit(session, tenant_id, "account_manager.assigned",
                {"account_id": account_id, "operator_id": operator_id})
    return row


def manager_of(session: Session, tenant_id: str, account_id: str) -> AccountManager | None:
    members.get_account(session, tenant_id, account_id)
    return session.get(AccountManager, (tenant_id, account_id))


def accounts_of(session: Session, tenant_id: str, operator_id: str) -> list[AccountManager]:
    """The accounts an operator user manages."""
    operators.get_operator(session, tenant_id, operator_id)
    return list(session.scalars(select(AccountManager).where(
        AccountManager.tenant_id == tenant_id, AccountManager.operator_id == operator_id
    ).order_by(AccountManager.account_id)))


# --- custom requests -------------------------------------------------------------------------


def _payload(row: CustomRequest) -> dict[str, Any]:
    return {"custom_request_id": row.id, "program_id": row.program_id,
            "account_id": row.account_id, "manager_id": row.manager_id, "status": row.status,
            "unit_id": row.unit_id, "price": row.price, "quantity": row.quantity}


def _changed(session: Session, tenant_id: str, row: CustomRequest, before: str | None,
             actor: str) -> None:
    row.updated_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action=f"custom_request.{row.status}",
                 object_type="custom_request", object_id=row.id,
                 before=None if before is None else {"status": before}, after=_payload(row))
    outbox.emit(session, tenant_id, f"custom_request.{row.status}", _payload(row))


def create_request(session: Session, tenant_id: str, program_id: str, account_id: str, *,
                   description: str, quantity: int = 1, user_id: str | None = None,
                   actor: str) -> CustomRequest:
    """An account asks its manager for an item outside the catalogue."""
    tenants.get_program(session, tenant_id, program_id)
    members.get_account(session, tenant_id, account_id)
    if user_id is not None and \
            members.get_user(session, tenant_id, user_id).account_id != account_id:
        raise InvalidCustomRequest("the user belongs to another account", field="user_id")
    text = description.strip()
    if not 0 < len(text) <= 2000:
        raise InvalidCustomRequest("describe the item (1 to 2000 characters)",
                                   field="description")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidCustomRequest("quantity must be a positive integer", field="quantity")
    manager = session.get(AccountManager, (tenant_id, account_id))
    if manager is None:
        raise NoAccountManager("the account has no personal manager", field="account_id")
    members.ensure_enrolled(session, tenant_id, program_id, account_id, actor)
    now = clock.now()
    row = CustomRequest(
        tenant_id=tenant_id, id=new_id("crq"), program_id=program_id, account_id=account_id,
        user_id=user_id, manager_id=manager.operator_id, description=text, quantity=quantity,
        status="requested", unit_id=None, price=None, quote_note=None, quote_expires_at=None,
        hold_id=None, entry_id=None, reason=None, created_at=now, quoted_at=None,
        decided_at=None, fulfilled_at=None, updated_at=now)
    session.add(row)
    _changed(session, tenant_id, row, None, actor)
    return row


def get_request(session: Session, tenant_id: str, request_id: str) -> CustomRequest:
    row = session.get(CustomRequest, (tenant_id, request_id))
    if row is None:
        raise CustomRequestNotFound(f"custom request {request_id} not found",
                                    field="custom_request_id")
    return row


def list_requests(session: Session, tenant_id: str, program_id: str, *,
                  account_id: str | None = None, manager_id: str | None = None,
                  status: str | None = None, limit: int = 100) -> list[CustomRequest]:
    tenants.get_program(session, tenant_id, program_id)
    query = select(CustomRequest).where(CustomRequest.tenant_id == tenant_id,
                                        CustomRequest.program_id == program_id)
    if account_id is not None:
        query = query.where(CustomRequest.account_id == account_id)
    if manager_id is not None:
        query = query.where(CustomRequest.manager_id == manager_id)
    if status is not None:
        query = query.where(CustomRequest.status == status)
    return list(session.scalars(query.order_by(CustomRequest.created_at.desc(),
                                               CustomRequest.id).limit(limit)))


def _locked(session: Session, tenant_id: str, request_id: str, target: str) -> CustomRequest:
    row = session.scalars(
        select(CustomRequest).where(CustomRequest.tenant_id == tenant_id,
                                    CustomRequest.id == request_id)
        .with_for_update().execution_options(populate_existing=True)).first()
    if row is None:
        raise CustomRequestNotFound(f"custom request {request_id} not found",
                                    field="custom_request_id")
    if not domain.request_may_move(row.status, target):
        raise InvalidTransition(f"a {row.status} request cannot become {target}",
                                field="status")
    return row


def _check_manager(row: CustomRequest, operator_id: str) -> None:
    if operator_id != row.manager_id:
        raise NotTheManager("only the account's manager may do this", field="operator_id")


def quote(session: Session, tenant_id: str, request_id: str, *, operator_id: str,
          unit_id: str, price: int, note: str | None = None, valid_days: int | None = None,
          actor: str) -> CustomRequest:
    """The manager prices the request (again, if already quoted) in a unit of the program."""
    row = _locked(session, tenant_id, request_id, "quoted")
    _check_manager(row, operator_id)
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        raise InvalidCustomRequest("price must be a positive integer", field="price")
    if valid_days is not None and valid_days <= 0:
        raise InvalidCustomRequest("valid_days must be positive", field="valid_days")
    if tenants.get_unit(session, tenant_id, unit_id).program_id != row.program_id:
        raise InvalidCustomRequest("the unit belongs to another program", field="unit_id")
    before = row.status
    now = clock.now()
    row.unit_id, row.price, row.quote_note, row.quoted_at = unit_id, price, note, now
    row.quote_expires_at = None if valid_days is None else now + timedelta(days=valid_days)
    row.status = "quoted"
    _changed(session, tenant_id, row, before, actor)
    return row


def accept(session: Session, tenant_id: str, request_id: str, *, actor: str) -> CustomRequest:
    """The account accepts the quote: the price is held in its wallet until fulfilment
    (``insufficient_funds`` when its available balance is short)."""
    row = _locked(session, tenant_id, request_id, "accepted")
    now = clock.now()
    if row.quote_expires_at is not None and row.quote_expires_at <= now:
        raise QuoteExpired("the quote has expired; ask the manager for a new one",
                           field="custom_request_id")
    assert row.unit_id is not None and row.price is not None  # quoted
    wallet = ledger.wallet(session, tenant_id, row.program_id, row.unit_id, "account",
                           row.account_id)
    redeemed = ledger.program_account(session, tenant_id, row.program_id, row.unit_id,
                                      "redeemed", normal="credit")
    hold, _ = ledger.create_hold(session, tenant_id, ledger.HoldRequest(
        program_id=row.program_id, debit_account_id=wallet.id, credit_account_id=redeemed.id,
        unit_id=row.unit_id, amount=row.price, kind="redemption",
        source_type="custom_request", source_id=row.id, hold_key=f"custom-request:{row.id}",
        memo=f"custom request {row.id}"))
    row.hold_id = hold.id
    row.status = "accepted"
    row.decided_at = now
    _changed(session, tenant_id, row, "quoted", actor)
    return row


def decline(session: Session, tenant_id: str, request_id: str, *, reason: str | None = None,
            actor: str) -> CustomRequest:
    """The account declines the quote (or the manager declines to source the item)."""
    row = _locked(session, tenant_id, request_id, "declined")
    before = row.status
    row.status, row.reason, row.decided_at = "declined", reason, clock.now()
    _changed(session, tenant_id, row, before, actor)
    return row


def fulfil(session: Session, tenant_id: str, request_id: str, *, operator_id: str,
           actor: str) -> CustomRequest:
    """The manager delivered the item: the held price is posted (a redemption entry)."""
    row = _locked(session, tenant_id, request_id, "fulfilled")
    _check_manager(row, operator_id)
    assert row.hold_id is not None  # an accepted request holds its price
    hold = ledger.post_hold(session, tenant_id, row.hold_id, actor=actor,
                            memo=f"custom request {row.id} fulfilled")
    row.entry_id = hold.resolved_entry_id
    row.status = "fulfilled"
    row.fulfilled_at = clock.now()
    _changed(session, tenant_id, row, "accepted", actor)
    return row


def cancel(session: Session, tenant_id: str, request_id: str, *, reason: str | None = None,
           actor: str) -> CustomRequest:
    """Withdraw a request that is not fulfilled; a held price is given back."""
    row = _locked(session, tenant_id, request_id, "cancelled")
    before = row.status
    if row.hold_id is not None:
        ledger.void_hold(session, tenant_id, row.hold_id, actor=actor)
    row.status, row.reason, row.decided_at = "cancelled", reason, clock.now()
    _changed(session, tenant_id, row, before, actor)
    return row

