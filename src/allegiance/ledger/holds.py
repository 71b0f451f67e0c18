"""Two-phase transfers: reserve, then post (fully or partly), void, or expire — exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance.kit import clock
from allegiance.kit.db import is_unique_violation
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.ledger import repository as repo
from allegiance.ledger.domain import Line, Side
from allegiance.ledger.errors import (
    AccountNotFound,
    HoldAlreadyResolved,
    HoldExpired,
    HoldKeyInFlight,
    HoldNotFound,
    InsufficientFunds,
    InvalidEntry,
)
from allegiance.ledger.models import Hold
from allegiance.ledger.service import EntryRequest, record


@dataclass(frozen=True)
class HoldRequest:
    program_id: str
    debit_account_id: str
    credit_account_id: str
    unit_id: str
    amount: int
    kind: str = "hold"
    source_type: str | None = None
    source_id: str | None = None
    hold_key: str | None = None
    memo: str | None = None
    expires_at: datetime | None = None
    # Post automatically at this time (pending earnings); exclusive with expires_at.
    release_at: datetime | None = None


def create_hold(session: Session, tenant_id: str, request: HoldRequest) -> tuple[Hold, bool]:
    """Reserve ``amount``: pending debit on one account, pending credit on the other.

    Returns (hold, created); a repeated ``hold_key`` returns the first hold.
    """
    amount = request.amount
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidEntry("amount must be a positive integer", field="amount")
    if request.debit_account_id == request.credit_account_id:
        raise InvalidEntry("debit and credit accounts must differ", field="credit_account_id")
    now = clock.now()
    if request.expires_at is not None and request.expires_at <= now:
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    if request.expires_at is not None and request.release_at is not None:
        raise ValidationFailed("a hold either expires or is released", field="release_at")
    if request.hold_key:
        existing = repo.hold_by_key(session, tenant_id, request.hold_key)
        if existing is not None:
            return existing, False
    infos = repo.account_infos(
        session, tenant_id, [request.debit_account_id, request.credit_account_id]
    )
    for field_name, account_id in (
        ("debit_account_id", request.debit_account_id),
        ("credit_account_id", request.credit_account_id),
    ):
        info = infos.get(account_id)
        if info is None:
            raise AccountNotFound(f"ledger account {account_id} not found", field=field_name)
        if info.program_id != request.program_id:
            raise InvalidEntry("the account is in another program", field=field_name)
        if info.unit_id != request.unit_id:
            raise InvalidEntry("the account holds another unit", field=field_name)
    deltas = {
        request.debit_account_id: repo.Delta(debits_pending=amount),
        request.credit_account_id: repo.Delta(credits_pending=amount),
    }
    failed = repo.apply_deltas(session, tenant_id, infos, deltas, now)
    if failed is not None:
        raise InsufficientFunds(
            f"ledger account {failed} has not enough available balance",
            field="amount", account_id=failed,
        )
    hold = Hold(
        tenant_id=tenant_id, id=new_id("hld"), program_id=request.program_id,
        debit_account_id=request.debit_account_id, credit_account_id=request.credit_account_id,
        unit_id=request.unit_id, amount=amount, posted_amount=0, state="pending",
        kind=request.kind, source_type=request.source_type, source_id=request.source_id,
        hold_key=request.hold_key, memo=request.memo, expires_at=request.expires_at,
        release_at=request.release_at, created_at=now, resolved_at=None, resolved_entry_id=None,
    )
    try:
        with session.begin_nested():
            session.add(hold)
            session.flush()
    except IntegrityError as exc:
        if not (request.hold_key and is_unique_violation(exc)):
            raise
        # A concurrent request with the same hold_key won; answer with its hold. Our counter
        # updates are still in this transaction: the caller must roll back, so say so.
        raise HoldKeyInFlight("a hold with this hold_key is being created",
                              field="hold_key") from exc
    return hold, True


def get_hold(session: Session, tenant_id: str, hold_id: str) -> Hold:
    hold = repo.get_hold(session, tenant_id, hold_id)
    if hold is None:
        raise HoldNotFound(f"hold {hold_id} not found", field="hold_id")
    return hold


def post_hold(
    session: Session,
    tenant_id: str,
    hold_id: str,
    amount: int | None = None,
    *,
    actor: str | None = None,
    memo: str | None = None,
) -> Hold:
    """Post ``amount`` (default: all) of a pending hold; the rest is released."""
    hold = get_hold(session, tenant_id, hold_id)
    take = hold.amount if amount is None else amount
    if isinstance(take, bool) or not isinstance(take, int) or take <= 0:
        raise InvalidEntry("amount must be a positive integer", field="amount")
    if take > hold.amount:
        raise InvalidEntry(f"at most {hold.amount} can be posted", field="amount")
    return _resolve(session, tenant_id, hold, "posted", take, actor, memo)


def void_hold(
    session: Session, tenant_id: str, hold_id: str, *, actor: str | None = None
) -> Hold:
    hold = get_hold(session, tenant_id, hold_id)
    return _resolve(session, tenant_id, hold, "voided", 0, actor, None)


def _resolve(
    session: Session,
    tenant_id: str,
    hold: Hold,
    state: str,
    take: int,
    actor: str | None,
    memo: str | None,
) -> Hold:
    now = clock.now()
    if state == "posted" and hold.expires_at is not None and hold.expires_at <= now:
        raise HoldExpired(f"hold {hold.id} expired at {hold.expires_at.isoformat()}",
                          field="hold_id")
    entry_id = None
    if not repo.resolve_hold(session, tenant_id, hold.id, state, take, now, None):
        session.refresh(hold)
        raise HoldAlreadyResolved(f"hold {hold.id} is already {hold.state}", field="hold_id")
    infos = repo.account_infos(session, tenant_id, [hold.debit_account_id, hold.credit_account_id])
    deltas = {
        hold.debit_account_id: repo.Delta(debits_pending=-hold.amount, debits_posted=take),
        hold.credit_account_id: repo.Delta(credits_pending=-hold.amount, credits_posted=take),
    }
    # Moving a reservation to posted never lowers what is available: no overdraw check.
    repo.apply_deltas(
        session, tenant_id, infos, deltas, now if state != "expired" else None,
        unchecked=frozenset(deltas),
    )
    if take > 0:
        request = EntryRequest(
            program_id=hold.program_id, kind=hold.kind, hold_id=hold.id,
            source_type=hold.source_type, source_id=hold.source_id,
            entry_key=f"hold:{hold.id}", memo=memo or hold.memo, actor=actor,
            lines=(
                Line(hold.debit_account_id, hold.unit_id, Side.DEBIT, take),
                Line(hold.credit_account_id, hold.unit_id, Side.CREDIT, take),
            ),
        )
        entry_id = record(session, tenant_id, [request], infos, now)[0].entry_id
        repo.resolve_hold_entry(session, tenant_id, hold.id, entry_id)
    session.refresh(hold)
    return hold


def expire_holds(session: Session, *, limit: int = 1000) -> int:
    """Expire pending holds past their deadline (releases the reservation). Returns the count."""
    now = clock.now()
    count = 0
    for tenant_id, hold_id in repo.expired_hold_ids(session, now, limit):
        hold = get_hold(session, tenant_id, hold_id)
        try:
            _resolve(session, tenant_id, hold, "expired", 0, "job:expire", None)
        except HoldAlreadyResolved:
            continue
        count += 1
    return count


def release_due_holds(session: Session, *, limit: int = 1000) -> int:
    """Post pending holds whose release time has passed (earnings after the return window)."""
    now = clock.now()
    count = 0
    for tenant_id, hold_id in repo.releasable_hold_ids(session, now, limit):
        hold = get_hold(session, tenant_id, hold_id)
        try:
            _resolve(session, tenant_id, hold, "posted", hold.amount, "job:release", None)
        except HoldAlreadyResolved:
            continue
        count += 1
    return count
