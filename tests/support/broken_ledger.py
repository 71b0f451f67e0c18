"""Deliberately broken ledger variants, for positive controls (RELIABILITY.md T3p).

A harness that reports "overspend = 0" only proves something if it reports overspend > 0 for an
implementation that can overspend. Never import this outside tests.
"""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.ledger import repository as repo
from allegiance.ledger.domain import Line, Side
from allegiance.ledger.errors import HoldAlreadyResolved, InsufficientFunds
from allegiance.ledger.service import EntryRequest, record


def read_modify_write_redeem(
    session: Session,
    tenant_id: str,
    *,
    program_id: str,
    unit_id: str,
    wallet_id: str,
    redeemed_id: str,
    amount: int,
    pause: float = 0.0,
    lost_update: bool = True,
) -> None:
    """Redeem ``amount`` the wrong way: read the balance (no lock), check it in Python, then
    apply an unconditional counter UPDATE. Under READ COMMITTED two transactions both read the
    old balance and both pass the check: the classic lost-check overspend.

    ``lost_update=True`` writes back the value computed from the read (``SET debits_posted =
    <read + amount>``), which no CHECK constraint can catch; ``False`` adds the amount without
    a condition, which the schema's ``ck_ledger_account_overdraw`` CHECK still refuses.

    The journal entry and postings are written like the real ledger's, so the only thing wrong
    is the missing conditional update / row lock.
    """
    dp, cp, dpend = session.execute(
        text("SELECT debits_posted, credits_posted, debits_pending FROM ledger_account "
             "WHERE tenant_id = :t AND id = :id"),
        {"t": tenant_id, "id": wallet_id},
    ).one()
    available = int(cp) - int(dp) - int(dpend)
    if available < amount:
        raise InsufficientFunds("not enough available balance (checked in Python)",
                                field="amount")
    if pause:
        time.sleep(pause)  # widens the window between the check and the write
    infos = repo.account_infos(session, tenant_id, [wallet_id, redeemed_id])
    if lost_update:
        # The bug: write back the value computed from the stale read (a lost update); the
        # database's CHECK constraint cannot see anything wrong with the new row.
        session.execute(
            text("UPDATE ledger_account SET debits_posted = :dp WHERE tenant_id = :t AND id = :id"),
            {"dp": int(dp) + amount, "t": tenant_id, "id": wallet_id},
        )
        repo.apply_deltas(session, tenant_id, infos,
                          {redeemed_id: repo.Delta(credits_posted=amount)}, clock.now())
    else:
        # The bug: an unconditional relative UPDATE (no "AND available >= x").
        deltas = {wallet_id: repo.Delta(debits_posted=amount),
                  redeemed_id: repo.Delta(credits_posted=amount)}
        repo.apply_deltas(session, tenant_id, infos, deltas, clock.now(),
                          unchecked=frozenset(deltas))
    request = EntryRequest(
        program_id=program_id, kind="redeem",
        lines=(Line(wallet_id, unit_id, Side.DEBIT, amount),
               Line(redeemed_id, unit_id, Side.CREDIT, amount)),
    )
    record(session, tenant_id, [request], infos, clock.now())


def broken_redeem_in_transaction(
    db: Database, tenant_id: str, *, program_id: str, unit_id: str, wallet_id: str,
    redeemed_id: str, amount: int, pause: float = 0.0, lost_update: bool = True,
) -> None:
    with db.transaction() as session:
        read_modify_write_redeem(
            session, tenant_id, program_id=program_id, unit_id=unit_id, wallet_id=wallet_id,
            redeemed_id=redeemed_id, amount=amount, pause=pause, lost_update=lost_update,
        )


def post_legs_separately(db: Database, tenant_id: str, request: EntryRequest) -> None:
    """Post a multi-leg entry the wrong way: each debit/credit pair as its own entry in its own
    transaction. A fault between two legs leaves the first legs committed (a partial journal)."""
    from allegiance.ledger.service import post_entries

    lines = list(request.lines)
    for start in range(0, len(lines), 2):
        with db.transaction() as session:
            post_entries(session, tenant_id, [EntryRequest(
                program_id=request.program_id, kind=request.kind,
                lines=tuple(lines[start:start + 2]),
            )])


def read_check_write_void(session: Session, tenant_id: str, hold_id: str,
                          pause: float = 0.0) -> None:
    """Void a hold the wrong way: read its state, check ``pending`` in Python, then update the
    state without ``AND state = 'pending'``. Concurrent callers all "win". It only flips the
    state (no counters), so every extra winner is visible to the harness and nothing else."""
    state = session.execute(
        text("SELECT state FROM hold WHERE tenant_id = :t AND id = :id"),
        {"t": tenant_id, "id": hold_id},
    ).scalar_one()
    if state != "pending":
        raise HoldAlreadyResolved(f"hold {hold_id} is already {state}", field="hold_id")
    if pause:
        time.sleep(pause)
    session.execute(
        text("UPDATE hold SET state = 'voided', resolved_at = :now "
             "WHERE tenant_id = :t AND id = :id"),
        {"now": clock.now(), "t": tenant_id, "id": hold_id},
    )
