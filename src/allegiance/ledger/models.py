"""The double-entry ledger: accounts (member wallets and program accounts), journal entries,
postings, holds (two-phase), lots (for expiry) and manual adjustments.

Postings are immutable and always posted; pending amounts live in holds. Each ledger account
keeps four materialised counters (TigerBeetle's): debits/credits, posted/pending.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base
from allegiance.kit.money import MAX_COUNTER

_AVAILABLE = (
    "(CASE WHEN normal = 'credit' "
    "THEN credits_posted - debits_posted - debits_pending "
    "ELSE debits_posted - credits_posted - credits_pending END)"
)


class LedgerAccount(Base):
    """A balance of one unit. ``owner_type`` is ``account`` or ``user`` for member wallets and
    ``program`` for the program side (issued, redeemed, expired, budgets, stock…)."""

    __tablename__ = "ledger_account"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "unit_id"], ["unit.tenant_id", "unit.id"]),
        UniqueConstraint("tenant_id", "program_id", "unit_id", "owner_type", "owner_id", "purpose"),
        Index("ix_ledger_account_owner", "tenant_id", "owner_type", "owner_id"),
        CheckConstraint("owner_type IN ('account', 'user', 'program')", name="owner_type"),
        CheckConstraint("normal IN ('credit', 'debit')", name="normal"),
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 "
            "AND debits_pending >= 0 AND credits_pending >= 0 "
            f"AND debits_posted < {MAX_COUNTER} AND credits_posted < {MAX_COUNTER} "
            f"AND debits_pending < {MAX_COUNTER} AND credits_pending < {MAX_COUNTER}",
            name="counters",
        ),
        CheckConstraint(f"NOT no_overdraw OR {_AVAILABLE} >= floor", name="overdraw"),
        CheckConstraint("floor <= 0", name="floor"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    unit_id: Mapped[str] = mapped_column(ID)
    owner_type: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[str] = mapped_column(ID)
    # "wallet" and "receivable" for members; "issued", "redeemed", "expired", "adjustments",
    # "budget:<name>", "stock:<reward>"… for the program.
    purpose: Mapped[str] = mapped_column(String(120))
    normal: Mapped[str] = mapped_column(String(6))
    # debits_must_not_exceed_credits (for credit-normal accounts), down to ``floor``.
    no_overdraw: Mapped[bool]
    floor: Mapped[int] = mapped_column(default=0)
    debits_posted: Mapped[int] = mapped_column(default=0)
    credits_posted: Mapped[int] = mapped_column(default=0)
    debits_pending: Mapped[int] = mapped_column(default=0)
    credits_pending: Mapped[int] = mapped_column(default=0)
    last_activity_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class JournalEntry(Base):
    """One business movement; two or more balanced postings. Immutable."""

    __tablename__ = "journal_entry"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "seq"),
        UniqueConstraint("tenant_id", "entry_key"),
        Index("ix_journal_entry_source", "tenant_id", "source_type", "source_id"),
        # Only reversals (migration 0033_reversesidx): read by reverses_entry_id = :id.
        Index("ix_journal_entry_reverses", "tenant_id", "reverses_entry_id",
              sqlite_where=text("reverses_entry_id IS NOT NULL"),
              postgresql_where=text("reverses_entry_id IS NOT NULL")),
        Index("ix_journal_entry_program_time", "tenant_id", "program_id", "effective_at"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int]
    program_id: Mapped[str] = mapped_column(ID)
    # earn, redeem, transfer, adjustment, reversal, expiry, hold_post, merge, …
    kind: Mapped[str] = mapped_column(String(40))
    # What caused it, e.g. ("event", "evt_…"), ("redemption", "red_…"); the ledger never
    # interprets these.
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[str | None] = mapped_column(String(200))
    # Business key: at most one entry per key, forever (survives idempotency-cache pruning).
    entry_key: Mapped[str | None] = mapped_column(String(300))
    reverses_entry_id: Mapped[str | None] = mapped_column(ID)
    hold_id: Mapped[str | None] = mapped_column(ID)
    memo: Mapped[str | None] = mapped_column(String(1000))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str | None] = mapped_column(String(200))
    effective_at: Mapped[datetime]
    created_at: Mapped[datetime]
    hash: Mapped[str] = mapped_column(String(64))


class Posting(Base):
    """One line of an entry: a debit or a credit of a positive integer amount."""

    __tablename__ = "posting"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "entry_id"], ["journal_entry.tenant_id", "journal_entry.id"]
        ),
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["ledger_account.tenant_id", "ledger_account.id"]
        ),
        Index("ix_posting_account", "tenant_id", "account_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("side IN ('D', 'C')", name="side"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    entry_id: Mapped[str] = mapped_column(ID, primary_key=True)
    line_no: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    unit_id: Mapped[str] = mapped_column(ID)
    side: Mapped[str] = mapped_column(String(1))
    amount: Mapped[int]
    # For a reversal line: the line of the original entry it reverses.
    reverses_line_no: Mapped[int | None]


class Hold(Base):
    """A pending transfer (two-phase): reserve, then post (fully or partly), void or expire,
    exactly once."""

    __tablename__ = "hold"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(
            ["tenant_id", "debit_account_id"], ["ledger_account.tenant_id", "ledger_account.id"]
        ),
        ForeignKeyConstraint(
            ["tenant_id", "credit_account_id"], ["ledger_account.tenant_id", "ledger_account.id"]
        ),
        UniqueConstraint("tenant_id", "hold_key"),
        Index("ix_hold_pending_expiry", "state", "expires_at"),
        Index("ix_hold_pending_release", "state", "release_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("posted_amount >= 0 AND posted_amount <= amount", name="posted_amount"),
        CheckConstraint("state IN ('pending', 'posted', 'voided', 'expired')", name="state"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    debit_account_id: Mapped[str] = mapped_column(ID)
    credit_account_id: Mapped[str] = mapped_column(ID)
    unit_id: Mapped[str] = mapped_column(ID)
    amount: Mapped[int]
    posted_amount: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    kind: Mapped[str] = mapped_column(String(40))
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[str | None] = mapped_column(String(200))
    hold_key: Mapped[str | None] = mapped_column(String(300))
    memo: Mapped[str | None] = mapped_column(String(1000))
    # Voided automatically at this time (a reservation that was never used)…
    expires_at: Mapped[datetime | None]
    # …or posted automatically at this time (earnings pending until a return window closes).
    release_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_entry_id: Mapped[str | None] = mapped_column(ID)


class Lot(Base):
    """A credit to a wallet that can expire; debits consume lots oldest first."""

    __tablename__ = "lot"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["ledger_account.tenant_id", "ledger_account.id"]
        ),
        Index("ix_lot_open", "tenant_id", "account_id", "remaining"),
        # Open lots in the expiry job's order (migration 0024_expiry).
        Index("ix_lot_expiry", "expires_at", "id", sqlite_where=text("remaining > 0"),
              postgresql_where=text("remaining > 0")),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    entry_id: Mapped[str] = mapped_column(ID)
    line_no: Mapped[int]
    amount: Mapped[int]
    remaining: Mapped[int]
    earned_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class LotUse(Base):
    """How much of a lot a debit line consumed (so reversing the debit restores the lot)."""

    __tablename__ = "lot_use"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "lot_id"], ["lot.tenant_id", "lot.id"]),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    entry_id: Mapped[str] = mapped_column(ID, primary_key=True)
    line_no: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[str] = mapped_column(ID, primary_key=True)
    amount: Mapped[int]


class Adjustment(Base):
    """A manual credit or debit with a reason; above the program's threshold it waits for a
    second approver who is not the requester."""

    __tablename__ = "adjustment"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(
            ["tenant_id", "wallet_id"], ["ledger_account.tenant_id", "ledger_account.id"]
        ),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        CheckConstraint(
            "status IN ('pending_approval', 'posted', 'rejected')", name="status"
        ),
        Index("ix_adjustment_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    wallet_id: Mapped[str] = mapped_column(ID)
    amount: Mapped[int]
    reason: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decision_reason: Mapped[str | None] = mapped_column(String(1000))
    entry_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class Aging(Base):
    """A member wallet's credits and debits per UTC day of their entries' ``effective_at``
    (``day``: days since 1970-01-01), and ``remaining``: how much of the wallet's posted
    balance is made of that day's credits now (the newest credits make up the balance, as
    debits consume the oldest first; 0 on every day while the balance is below zero).

    Written in the posting's transaction: a trigger on ``posting`` (migration ``0018_aging``)
    adds each member-wallet posting to its day and recomputes the wallet's ``remaining`` (the
    wallet's counter row is already locked by then, so writers of one wallet are serialised);
    writers of many postings (the bulk expiry, ``post_entries`` of 32 entries or more) pause it
    for their own postings and write the same rows set-based (``ledger.aging_writes``). The liability "now" reads it instead of every posting;
    :func:`allegiance.ledger.aging.recompute` gives the same rows from the postings."""

    __tablename__ = "ledger_aging"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["ledger_account.tenant_id", "ledger_account.id"]
        ),
        CheckConstraint(
            "credits >= 0 AND debits >= 0 AND remaining >= 0 AND remaining <= credits",
            name="amounts",
        ),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    day: Mapped[int] = mapped_column(primary_key=True)
    credits: Mapped[int]
    debits: Mapped[int]
    remaining: Mapped[int]
