"""Read-only queries of the web pages over the features' tables (through their packages).
Every query filters by tenant, takes a page of rows, and batches lookups (no query per row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, extract, func, or_, select
from sqlalchemy.orm import Session

from allegiance import ledger, members, rewards, tenants
from allegiance.kit import clock


@dataclass
class WalletRow:
    id: str
    program_id: str
    program_name: str
    owner_type: str
    owner_id: str
    owner_name: str
    unit_code: str
    unit_name: str
    unit_kind: str
    currency: str | None
    posted: int
    pending_out: int
    available: int


def wallets(session: Session, tenant_id: str, account_ids: Sequence[str],
            program_id: str | None = None) -> list[WalletRow]:
    """The wallets of these accounts and of their users, with balances."""
    if not account_ids:
        return []
    users = {u.id: (u.name, u.account_id) for u in session.scalars(select(members.User).where(
        members.User.tenant_id == tenant_id, members.User.account_id.in_(list(account_ids))))}
    names = account_names(session, tenant_id, account_ids)
    stmt = (select(ledger.LedgerAccount, tenants.Unit, tenants.Program.name)
            .join(tenants.Unit, and_(tenants.Unit.tenant_id == ledger.LedgerAccount.tenant_id,
                                     tenants.Unit.id == ledger.LedgerAccount.unit_id))
            .join(tenants.Program,
                  and_(tenants.Program.tenant_id == ledger.LedgerAccount.tenant_id,
                       tenants.Program.id == ledger.LedgerAccount.program_id))
            .where(ledger.LedgerAccount.tenant_id == tenant_id,
                   ledger.LedgerAccount.purpose == "wallet",
                   or_(and_(ledger.LedgerAccount.owner_type == "account",
                            ledger.LedgerAccount.owner_id.in_(list(account_ids))),
                       and_(ledger.LedgerAccount.owner_type == "user",
                            ledger.LedgerAccount.owner_id.in_(list(users) or [""])))))
    if program_id is not None:
        stmt = stmt.where(ledger.LedgerAccount.program_id == program_id)
    out = []
    for account, unit, program_name in session.execute(stmt.order_by(
            ledger.LedgerAccount.program_id, ledger.LedgerAccount.owner_type,
            ledger.LedgerAccount.id)):
        balance = ledger.balance_of(account)
        owner = (names.get(account.owner_id, account.owner_id) if account.owner_type == "account"
                 else users.get(account.owner_id, (account.owner_id, ""))[0])
        out.append(WalletRow(account.id, account.program_id, program_name, account.owner_type,
                             account.owner_id, owner, unit.code, unit.name, unit.kind,
                             unit.currency, balance.posted, balance.pending_out,
                             balance.available))
    return out


HISTORY_KINDS = ("earn", "redeem", "adjustment", "reversal", "expiry", "transfer", "hold_post")


def history(session: Session, tenant_id: str, wallet_id: str, *, kind: str | None = None,
            since: datetime | None = None, until: datetime | None = None,
            before_seq: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """A wallet's movements, newest first, as signed amounts (+ credit to the wallet);
    ``limit + 1`` rows so the caller can tell whether there is more."""
    stmt = (select(ledger.JournalEntry.seq, ledger.JournalEntry.id, ledger.JournalEntry.kind,
                   ledger.JournalEntry.effective_at, ledger.JournalEntry.memo,
                   ledger.JournalEntry.source_type, ledger.JournalEntry.source_id,
                   ledger.Posting.side, ledger.Posting.amount)
            .join(ledger.JournalEntry,
                  and_(ledger.JournalEntry.tenant_id == ledger.Posting.tenant_id,
                       ledger.JournalEntry.id == ledger.Posting.entry_id))
            .where(ledger.Posting.tenant_id == tenant_id, ledger.Posting.account_id == wallet_id))
    if kind:
        stmt = stmt.where(ledger.JournalEntry.kind == kind)
    if since is not None:
        stmt = stmt.where(ledger.JournalEntry.effective_at >= since)
    if until is not None:
        stmt = stmt.where(ledger.JournalEntry.effective_at < until)
    if before_seq is not None:
        stmt = stmt.where(ledger.JournalEntry.seq < before_seq)
    stmt = stmt.order_by(ledger.JournalEntry.seq.desc(), ledger.Posting.line_no.desc())
    rows = []
    for seq, entry_id, entry_kind, at, memo, source_type, source_id, side, amount in \
            session.execute(stmt.limit(limit + 1)):
        rows.append({"seq": seq, "entry_id": entry_id, "kind": entry_kind, "at": at,
                     "memo": memo or "", "source": f"{source_type or ''} {source_id or ''}".strip(),
                     "amount": amount if side == "C" else -amount})
    return rows


def wallet_of(session: Session, tenant_id: str, wallet_id: str) -> ledger.LedgerAccount | None:
    found: ledger.LedgerAccount | None = session.get(ledger.LedgerAccount, (tenant_id, wallet_id))
    return found


def owner_account(session: Session, tenant_id: str, wallet: ledger.LedgerAccount) -> str | None:
    """The member account a wallet belongs to (its user's account for a user wallet)."""
    if wallet.owner_type == "account":
        return wallet.owner_id
    if wallet.owner_type == "user":
        user = session.get(members.User, (tenant_id, wallet.owner_id))
        return user.account_id if user is not None else None
    return None


# ---------------------------------------------------------------------------------------------
# Dashboard


@dataclass
class Figures:
    """What the dashboard shows beside the analytics KPIs: the queues' counts and twelve
    months of the first unit's points issued and redeemed."""

    pending_redemptions: int
    pending_adjustments: int
    unit_name: str | None
    months: list[tuple[str, int, int]]  # (YYYY-MM, issued, redeemed) of the first unit


def dashboard(session: Session, tenant_id: str, program_id: str) -> Figures:
    now = clock.now()
    pending = session.scalar(select(func.count()).select_from(rewards.Redemption).where(
        rewards.Redemption.tenant_id == tenant_id, rewards.Redemption.program_id == program_id,
        rewards.Redemption.status.in_(("requested", "approved")))) or 0
    adjustments = session.scalar(select(func.count()).select_from(ledger.Adjustment).where(
        ledger.Adjustment.tenant_id == tenant_id, ledger.Adjustment.program_id == program_id,
        ledger.Adjustment.status == "pending_approval")) or 0
    units = tenants.list_units(session, tenant_id, program_id)
    months: list[tuple[str, int, int]] = []
    if units:
        side = {a.purpose: a for a in session.scalars(select(ledger.LedgerAccount).where(
            ledger.LedgerAccount.tenant_id == tenant_id,
            ledger.LedgerAccount.program_id == program_id,
            ledger.LedgerAccount.unit_id == units[0].id,
            ledger.LedgerAccount.owner_type == "program",
            ledger.LedgerAccount.purpose.in_(("issued", "redeemed"))))}
        months = _months(session, tenant_id, [side.get(p) for p in ("issued", "redeemed")], now)
    return Figures(int(pending), int(adjustments), units[0].name if units else None, months)


def _months(session: Session, tenant_id: str,
            accounts: list[ledger.LedgerAccount | None], now: datetime) -> list[tuple[str, int, int]]:
    """Twelve months of points issued (debits of ``issued``) and redeemed (credits of
    ``redeemed``), summed in the database."""
    keys = []
    year, month = now.year, now.month
    for _ in range(12):
        keys.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    keys.reverse()
    start = datetime(keys[0][0], keys[0][1], 1, tzinfo=now.tzinfo)
    totals: dict[tuple[int, int, int], int] = {}
    for index, (account, side) in enumerate(zip(accounts, ("D", "C"), strict=True)):
        if account is None:
            continue
        y = extract("year", ledger.JournalEntry.effective_at)
        m = extract("month", ledger.JournalEntry.effective_at)
        stmt = (select(y, m, func.sum(ledger.Posting.amount))
                .join(ledger.JournalEntry,
                      and_(ledger.JournalEntry.tenant_id == ledger.Posting.tenant_id,
                           ledger.JournalEntry.id == ledger.Posting.entry_id))
                .where(ledger.Posting.tenant_id == tenant_id,
                       ledger.Posting.account_id == account.id, ledger.Posting.side == side,
                       ledger.JournalEntry.effective_at >= start)
                .group_by(y, m))
        for yy, mm, total in session.execute(stmt):
            totals[(int(yy), int(mm), index)] = int(total or 0)
    return [(f"{yy:04d}-{mm:02d}", totals.get((yy, mm, 0), 0), totals.get((yy, mm, 1), 0))
            for yy, mm in keys]


def bar_chart(months: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Geometry for the dashboard's SVG bars (the template draws them)."""
    top = max([1, *[max(i, r) for _, i, r in months]])
    height = 160
    bars = []
    for index, (label, issued, redeemed) in enumerate(months):
        x = 40 + index * 52
        bars.append({"label": label[2:], "x": x, "issued": issued, "redeemed": redeemed,
                     "hi": round(issued / top * height), "hr": round(redeemed / top * height)})
    return {"bars": bars, "height": height, "top": top, "width": 40 + len(months) * 52 + 10}


def account_names(session: Session, tenant_id: str, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {str(i): str(n) for i, n in session.execute(
        select(members.Account.id, members.Account.name).where(
            members.Account.tenant_id == tenant_id, members.Account.id.in_(sorted(set(ids)))))}


def rewards_by_id(session: Session, tenant_id: str, ids: Sequence[str]) -> dict[str, rewards.Reward]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(rewards.Reward).where(
        rewards.Reward.tenant_id == tenant_id, rewards.Reward.id.in_(sorted(set(ids)))))}


def redemptions(session: Session, tenant_id: str, program_id: str, *,
                statuses: Sequence[str] = (), account_ids: Sequence[str] = (),
                before: str | None = None, limit: int = 50) -> list[rewards.Redemption]:
    """Redemptions newest first (by id, which is time-ordered); ``limit + 1`` rows."""
    stmt = select(rewards.Redemption).where(rewards.Redemption.tenant_id == tenant_id,
                                            rewards.Redemption.program_id == program_id)
    if statuses:
        stmt = stmt.where(rewards.Redemption.status.in_(list(statuses)))
    if account_ids:
        stmt = stmt.where(rewards.Redemption.account_id.in_(list(account_ids)))
    if before:
        stmt = stmt.where(rewards.Redemption.id < before)
    return list(session.scalars(stmt.order_by(rewards.Redemption.id.desc()).limit(limit + 1)))


def units_by_id(session: Session, tenant_id: str, program_id: str) -> dict[str, tenants.Unit]:
    return {u.id: u for u in tenants.list_units(session, tenant_id, program_id)}


def pending_adjustments(session: Session, tenant_id: str, program_id: str,
                        limit: int = 50) -> list[tuple[Any, str | None, str]]:
    """Adjustments awaiting a second approver, oldest first, with the wallet's owner account
    and its name: (adjustment, account id, account name)."""
    rows = list(session.scalars(select(ledger.Adjustment).where(
        ledger.Adjustment.tenant_id == tenant_id, ledger.Adjustment.program_id == program_id,
        ledger.Adjustment.status == "pending_approval")
        .order_by(ledger.Adjustment.id).limit(limit)))
    wallets = {w.id: w for w in session.scalars(select(ledger.LedgerAccount).where(
        ledger.LedgerAccount.tenant_id == tenant_id,
        ledger.LedgerAccount.id.in_(sorted({r.wallet_id for r in rows}) or [""])))}
    users = {u.id: u.account_id for u in session.scalars(select(members.User).where(
        members.User.tenant_id == tenant_id,
        members.User.id.in_(sorted({w.owner_id for w in wallets.values()
                                    if w.owner_type == "user"}) or [""])))}
    owners = {}
    for wallet_id, wallet in wallets.items():
        owners[wallet_id] = wallet.owner_id if wallet.owner_type == "account" else users.get(
            wallet.owner_id)
    names = account_names(session, tenant_id, [a for a in owners.values() if a])
    out = []
    for row in rows:
        account = owners.get(row.wallet_id)
        out.append((row, account, names.get(account or "", "—")))
    return out
