"""Merging duplicate accounts (balances move through the ledger) and transfers a user asks
for, checked against the role table. Functions take the caller's session and only flush."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from allegiance import audit, ledger
from allegiance.kit import clock, outbox
from allegiance.kit.errors import NotFound
from allegiance.members import domain
from allegiance.members.enrolments import _enrolment_of, _record_change
from allegiance.members.errors import (
    InvalidMerge,
    PendingHolds,
    RoleForbidden,
    UserNotActive,
    WalletNotFound,
)
from allegiance.members.models import Account, AccountExternalId, Enrolment, Invitation, User
from allegiance.members.service import (
    _active_account,
    _snapshot,
    _text,
    descendants,
    get_user,
)

# ---------------------------------------------------------------------------------------------
# Merge and transfers


def _member_accounts(
    session: Session, tenant_id: str, owner_id: str, purpose: str
) -> list[ledger.LedgerAccount]:
    return list(session.scalars(select(ledger.LedgerAccount).where(
        ledger.LedgerAccount.tenant_id == tenant_id,
        ledger.LedgerAccount.owner_type == "account",
        ledger.LedgerAccount.owner_id == owner_id,
        ledger.LedgerAccount.purpose == purpose,
    ).order_by(ledger.LedgerAccount.id)))


def merge_accounts(
    session: Session, tenant_id: str, *, source_id: str, target_id: str, actor: str, reason: str
) -> Account:
    """Fold a duplicate account into another: balances move through the ledger, users,
    external ids, child accounts and enrolments follow, and the source is marked merged."""
    clean_reason = _text(reason, "reason", max_len=1000, required=True) or ""
    if source_id == target_id:
        raise InvalidMerge("an account cannot be merged into itself", field="into_account_id")
    source = _active_account(session, tenant_id, source_id, "account_id")
    target = _active_account(session, tenant_id, target_id, "into_account_id")
    if target.id in descendants(session, tenant_id, source.id):
        raise InvalidMerge("an account cannot be merged into an account below it",
                           field="into_account_id")
    wallets = _member_accounts(session, tenant_id, source.id, "wallet")
    for wallet in wallets:
        bal = ledger.balance_of(wallet)
        if bal.pending_in or bal.pending_out:
            raise PendingHolds(f"wallet {wallet.id} has pending holds; post or void them first",
                               field="account_id", wallet_id=wallet.id)
    moved: list[dict[str, Any]] = []
    for wallet in wallets:
        posted = ledger.balance_of(wallet).posted
        if posted == 0:
            continue
        dest = ledger.wallet(session, tenant_id, wallet.program_id, wallet.unit_id, "account",
                             target.id)
        src, dst = (wallet.id, dest.id) if posted > 0 else (dest.id, wallet.id)
        result = ledger.transfer(session, tenant_id, from_wallet_id=src, to_wallet_id=dst,
                                 amount=abs(posted), kind="merge", actor=actor,
                                 entry_key=f"merge:{source.id}:{wallet.id}",
                                 memo=f"merge of {source.id} into {target.id}")
        moved.append({"wallet_id": wallet.id, "to_wallet_id": dest.id, "amount": posted,
                      "entry_id": result.entry_id})
    for owed in _member_accounts(session, tenant_id, source.id, "receivable"):
        posted = ledger.balance_of(owed).posted
        if posted <= 0:
            continue
        dest = ledger.receivable(session, tenant_id, owed.program_id, owed.unit_id, "account",
                                 target.id)
        result = ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=owed.program_id, kind="merge", actor=actor,
            entry_key=f"merge:{source.id}:{owed.id}",
            memo=f"merge of {source.id} into {target.id}",
            lines=(ledger.Line(dest.id, owed.unit_id, ledger.Side.DEBIT, posted),
                   ledger.Line(owed.id, owed.unit_id, ledger.Side.CREDIT, posted))))
        moved.append({"wallet_id": owed.id, "to_wallet_id": dest.id, "amount": posted,
                      "entry_id": result.entry_id})
    session.execute(update(User).where(
        User.tenant_id == tenant_id, User.account_id == source.id,
    ).values(account_id=target.id).execution_options(synchronize_session="fetch"))
    session.execute(update(AccountExternalId).where(
        AccountExternalId.tenant_id == tenant_id, AccountExternalId.account_id == source.id,
    ).values(account_id=target.id).execution_options(synchronize_session="fetch"))
    session.execute(update(Invitation).where(
        Invitation.tenant_id == tenant_id, Invitation.account_id == source.id,
        Invitation.status == "pending",
    ).values(account_id=target.id).execution_options(synchronize_session="fetch"))
    session.execute(update(Account).where(
        Account.tenant_id == tenant_id, Account.parent_id == source.id,
    ).values(parent_id=target.id).execution_options(synchronize_session="fetch"))
    _merge_enrolments(session, tenant_id, source.id, target.id, actor)
    before = _snapshot(source, ("status", "merged_into_id"))
    source.status = "merged"
    source.merged_into_id = target.id
    source.updated_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="account.merged",
                 object_type="account", object_id=source.id, before=before,
                 after={"status": "merged", "merged_into_id": target.id,
                        "reason": clean_reason, "moved": moved})
    outbox.emit(session, tenant_id, "account.merged",
                {"account_id": source.id, "into_account_id": target.id, "moved": moved})
    return source


def _merge_enrolments(
    session: Session, tenant_id: str, source_id: str, target_id: str, actor: str
) -> None:
    for enrolment in list(session.scalars(select(Enrolment).where(
        Enrolment.tenant_id == tenant_id, Enrolment.account_id == source_id,
    ).order_by(Enrolment.id))):
        if _enrolment_of(session, tenant_id, enrolment.program_id, target_id) is None:
            enrolment.account_id = target_id
            enrolment.updated_at = clock.now()
            session.flush()
            audit.record(session, tenant_id, actor=actor, action="enrolment.moved",
                         object_type="enrolment", object_id=enrolment.id,
                         before={"account_id": source_id}, after={"account_id": target_id})
        elif enrolment.status not in ("closed", "rejected"):
            from_status = enrolment.status
            enrolment.status = "closed"
            enrolment.updated_at = clock.now()
            _record_change(session, tenant_id, enrolment, from_status, actor,
                           f"account merged into {target_id}")


def _wallet(session: Session, tenant_id: str, wallet_id: str, field: str) -> ledger.LedgerAccount:
    try:
        found = ledger.get_account(session, tenant_id, wallet_id)
    except NotFound as exc:
        raise WalletNotFound(f"wallet {wallet_id} not found", field=field) from exc
    if found.owner_type not in ("account", "user") or found.purpose != "wallet":
        raise WalletNotFound(f"{wallet_id} is not a member wallet", field=field)
    return found


def wallet_relation(
    session: Session, tenant_id: str, user: User, account: Account,
    wallet: ledger.LedgerAccount, scope: set[str],
) -> domain.Relation:
    """How ``wallet`` relates to ``user`` (of ``account``; ``scope`` is the account and its
    descendants)."""
    if wallet.owner_type == "user":
        owner = session.get(User, (tenant_id, wallet.owner_id))
        in_scope = owner is not None and owner.account_id in scope
        return domain.relation("user", wallet.owner_id == user.id, in_scope)
    return domain.relation("account", wallet.owner_id == account.id, wallet.owner_id in scope,
                           parent_account=wallet.owner_id == account.parent_id)


def transfer_as_user(
    session: Session,
    tenant_id: str,
    *,
    user_id: str,
    from_wallet_id: str,
    to_wallet_id: str,
    amount: int,
    entry_key: str | None = None,
) -> ledger.EntryResult:
    """A transfer a user asks for, allowed by the role table of :mod:`members.domain`."""
    user = get_user(session, tenant_id, user_id)
    if user.status != "active":
        raise UserNotActive(f"user {user_id} is {user.status}", field="user_id")
    account = _active_account(session, tenant_id, user.account_id, "user_id")
    source = _wallet(session, tenant_id, from_wallet_id, "from_wallet_id")
    target = _wallet(session, tenant_id, to_wallet_id, "to_wallet_id")
    scope = {account.id, *descendants(session, tenant_id, account.id)}
    from_rel = wallet_relation(session, tenant_id, user, account, source, scope)
    to_rel = wallet_relation(session, tenant_id, user, account, target, scope)
    if not domain.may_transfer(user.role, from_rel, to_rel):
        raise RoleForbidden(
            f"a {user.role} may not transfer from a {from_rel.value} wallet "
            f"to a {to_rel.value} wallet", field="from_wallet_id")
    actor = f"user:{user.id}"
    result = ledger.transfer(session, tenant_id, from_wallet_id=source.id,
                             to_wallet_id=target.id, amount=amount, entry_key=entry_key,
                             actor=actor)
    if result.created:
        audit.record(session, tenant_id, actor=actor, action="wallet.transferred",
                     object_type="journal_entry", object_id=result.entry_id,
                     after={"from_wallet_id": source.id, "to_wallet_id": target.id,
                            "amount": amount})
    return result


def user_may(
    session: Session, tenant_id: str, user_id: str, wallet_id: str, action: str = "view"
) -> bool:
    """Whether an active user may ``view`` or ``spend`` a wallet, by the role table."""
    if action not in ("view", "spend"):
        raise ValueError("action is view or spend")
    user = get_user(session, tenant_id, user_id)
    account = session.get(Account, (tenant_id, user.account_id))
    if user.status != "active" or account is None or account.status != "active":
        return False
    wallet = _wallet(session, tenant_id, wallet_id, "wallet_id")
    scope = {account.id, *descendants(session, tenant_id, account.id)}
    rel = wallet_relation(session, tenant_id, user, account, wallet, scope)
    table = domain.VIEW if action == "view" else domain.SPEND
    return rel in table.get(user.role, frozenset())
