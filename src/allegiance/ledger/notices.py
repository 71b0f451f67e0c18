"""``points.expiring``: one webhook event per wallet and expiry date, ``days`` before the date.

Lots are grouped by wallet and expiry instant; each group is announced once: its outbox
message id is derived from the wallet, the instant and the notice period, so a rerun of the
job (or an overlapping one after a crash) finds the message already there and sends nothing.
The amount is what was still unspent when the notice was made.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from allegiance.kit import clock, outbox
from allegiance.kit.models import OutboxMessage
from allegiance.ledger.models import LedgerAccount, Lot

EVENT = "points.expiring"


def notice_id(wallet_id: str, expires_at: datetime, days: int) -> str:
    """The outbox id of a wallet's notice for one expiry instant and notice period."""
    digest = hashlib.sha256(f"{wallet_id}|{expires_at.isoformat()}|{days}".encode()).hexdigest()
    return f"msg_exp_{digest[:32]}"


def notify_expiring(session: Session, *, days: int = 30, limit: int = 1000,
                    after: tuple[str, str, datetime] | None = None
                    ) -> tuple[int, tuple[str, str, datetime] | None]:
    """Announce one batch of (wallet, expiry) groups expiring within ``days``, in key order
    after ``after``. Returns (messages added, the last key seen, or None when done)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    now = clock.now()
    key = (Lot.tenant_id, Lot.account_id, Lot.expires_at)
    query = (
        select(Lot.tenant_id, Lot.account_id, Lot.expires_at, func.sum(Lot.remaining))
        .where(Lot.remaining > 0, Lot.expires_at.is_not(None), Lot.expires_at > now,
               Lot.expires_at <= now + timedelta(days=days))
        .group_by(*key).order_by(*key).limit(limit))
    if after is not None:
        query = query.where(tuple_(*key) > tuple_(*after))
    groups = [(str(t), str(a), e, int(n)) for t, a, e, n in session.execute(query)
              if e is not None]
    if not groups:
        return 0, None
    wallets = _wallets(session, {(g[0], g[1]) for g in groups})
    ids = {(g[0], g[1], g[2]): notice_id(g[1], g[2], days) for g in groups}
    existing = set(session.scalars(select(OutboxMessage.id).where(
        tuple_(OutboxMessage.tenant_id, OutboxMessage.id).in_(
            [(g[0], ids[(g[0], g[1], g[2])]) for g in groups]))))
    added = 0
    for tenant_id, account_id, expires_at, amount in groups:
        message_id = ids[(tenant_id, account_id, expires_at)]
        wallet = wallets.get((tenant_id, account_id))
        if message_id in existing or wallet is None:
            continue
        outbox.emit(session, tenant_id, EVENT, {
            "program_id": wallet.program_id, "unit_id": wallet.unit_id, "wallet_id": wallet.id,
            "owner_type": wallet.owner_type, "owner_id": wallet.owner_id,
            "amount": int(amount), "expires_at": expires_at.isoformat(),
            "days_left": max(0, (expires_at - now).days)}, message_id=message_id)
        added += 1
    session.flush()
    last = groups[-1]
    return added, (last[0], last[1], last[2]) if len(groups) == limit else None


def _wallets(session: Session, keys: set[tuple[str, str]]
             ) -> dict[tuple[str, str], LedgerAccount]:
    rows = session.scalars(select(LedgerAccount).where(
        tuple_(LedgerAccount.tenant_id, LedgerAccount.id).in_(sorted(keys))))
    return {(row.tenant_id, row.id): row for row in rows}
