"""Pydantic I/O models of the ledger API.

Amounts are strict integers (points, or minor units of money): ``10.5``, ``"10"`` and ``true``
are refused with a 422 naming the field. Inputs forbid unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from allegiance.kit.money import MAX_AMOUNT
from allegiance.kit.schemas import Input as _Input
from allegiance.kit.schemas import Output as _Output
from allegiance.ledger.balances import balance_of
from allegiance.ledger.domain import Balance
from allegiance.ledger.models import JournalEntry, LedgerAccount, Posting

Key = Field(default=None, min_length=1, max_length=300)
Memo = Field(default=None, max_length=1000)
OwnerType = Literal["account", "user"]


def positive_amount() -> int:
    return Field(strict=True, gt=0, lt=MAX_AMOUNT)  # type: ignore[no-any-return]


class Page(BaseModel):
    next_cursor: str | None


# ---------------------------------------------------------------------------------------------
# Accounts and wallets


class BalanceRead(BaseModel):
    posted: int
    pending_in: int
    pending_out: int
    available: int

    @classmethod
    def of(cls, b: Balance) -> BalanceRead:
        return cls(posted=b.posted, pending_in=b.pending_in, pending_out=b.pending_out,
                   available=b.available)


class LedgerAccountRead(BaseModel):
    """A member wallet (owner ``account`` or ``user``) or a program-side account."""

    id: str
    program_id: str
    unit_id: str
    unit_code: str
    owner_type: str
    owner_id: str
    purpose: str
    normal: Literal["debit", "credit"]
    balance: BalanceRead
    floor: int
    created_at: datetime

    @classmethod
    def of(cls, account: LedgerAccount, unit_code: str) -> LedgerAccountRead:
        return cls(
            id=account.id, program_id=account.program_id, unit_id=account.unit_id,
            unit_code=unit_code, owner_type=account.owner_type, owner_id=account.owner_id,
            purpose=account.purpose, normal=account.normal,
            balance=BalanceRead.of(balance_of(account)), floor=account.floor,
            created_at=account.created_at,
        )


class LedgerAccountPage(Page):
    items: list[LedgerAccountRead]


class WalletCreate(_Input):
    """Get or create the wallet of an account or user; give ``unit_id`` or ``unit_code``."""

    program_id: str = Field(min_length=1, max_length=40)
    unit_id: str | None = Field(default=None, min_length=1, max_length=40)
    unit_code: str | None = Field(default=None, min_length=1, max_length=64)
    owner_type: OwnerType
    owner_id: str = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _one_unit(self) -> WalletCreate:
        if (self.unit_id is None) == (self.unit_code is None):
            raise ValueError("give exactly one of unit_id and unit_code")
        return self


class WalletEntryRead(BaseModel):
    """One posting of a wallet's history."""

    entry_id: str
    seq: int
    line_no: int
    kind: str
    side: Literal["debit", "credit"]
    amount: int
    effective_at: datetime
    memo: str | None
    source_type: str | None
    source_id: str | None
    reverses_entry_id: str | None


class WalletEntryPage(Page):
    items: list[WalletEntryRead]


# ---------------------------------------------------------------------------------------------
# Entries


class PostingCreate(_Input):
    account_id: str = Field(min_length=1, max_length=40)
    unit_id: str = Field(min_length=1, max_length=40)
    side: Literal["debit", "credit"]
    amount: int = positive_amount()


class EntryCreate(_Input):
    program_id: str = Field(min_length=1, max_length=40)
    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_.:-]*$")
    postings: list[PostingCreate] = Field(min_length=2, max_length=100)
    entry_key: str | None = Key
    memo: str | None = Memo
    source_type: str | None = Field(default=None, min_length=1, max_length=40)
    source_id: str | None = Field(default=None, min_length=1, max_length=200)
    effective_at: AwareDatetime | None = None


class PostingRead(BaseModel):
    line_no: int
    account_id: str
    unit_id: str
    side: Literal["debit", "credit"]
    amount: int
    reverses_line_no: int | None


class EntryRead(BaseModel):
    id: str
    seq: int
    program_id: str
    kind: str
    entry_key: str | None
    memo: str | None
    source_type: str | None
    source_id: str | None
    reverses_entry_id: str | None
    hold_id: str | None
    actor: str | None
    effective_at: datetime
    created_at: datetime
    postings: list[PostingRead]

    @classmethod
    def of(cls, entry: JournalEntry, postings: list[Posting]) -> EntryRead:
        return cls(
            id=entry.id, seq=entry.seq, program_id=entry.program_id, kind=entry.kind,
            entry_key=entry.entry_key, memo=entry.memo, source_type=entry.source_type,
            source_id=entry.source_id, reverses_entry_id=entry.reverses_entry_id,
            hold_id=entry.hold_id, actor=entry.actor, effective_at=entry.effective_at,
            created_at=entry.created_at,
            postings=[
                PostingRead(line_no=p.line_no, account_id=p.account_id, unit_id=p.unit_id,
                            side="debit" if p.side == "D" else "credit", amount=p.amount,
                            reverses_line_no=p.reverses_line_no)
                for p in postings
            ],
        )


class EntryWritten(EntryRead):
    """The answer to a posting: ``created`` is false when ``entry_key`` was already used (the
    first entry is returned, with status 200)."""

    created: bool


class PointsCreate(_Input):
    wallet_id: str = Field(min_length=1, max_length=40)
    amount: int = positive_amount()
    kind: Literal["earn", "redeem"]
    entry_key: str | None = Key
    memo: str | None = Memo


class PointsWritten(BaseModel):
    entry: EntryWritten
    wallet_id: str
    balance: BalanceRead


class ReversalCreate(_Input):
    """``lines`` maps original line numbers to amounts; without it everything left reverses."""

    lines: dict[str, StrictInt] | None = Field(default=None, min_length=1, max_length=100)
    entry_key: str | None = Key
    memo: str | None = Memo

    @field_validator("lines")
    @classmethod
    def _lines(cls, lines: dict[str, int] | None) -> dict[str, int] | None:
        for key, amount in (lines or {}).items():
            if not key.isdigit() or int(key) < 1 or len(key) > 6:
                raise ValueError(f"line {key!r} is not a line number")
            if amount <= 0 or amount >= MAX_AMOUNT:
                raise ValueError(f"line {key}: amounts must be positive integers")
        return lines


class TransferCreate(_Input):
    from_wallet_id: str = Field(min_length=1, max_length=40)
    to_wallet_id: str = Field(min_length=1, max_length=40)
    amount: int = positive_amount()
    entry_key: str | None = Key
    memo: str | None = Memo


# ---------------------------------------------------------------------------------------------
# Holds


class HoldCreate(_Input):
    """Reserve ``amount``: from ``wallet_id`` to the program's redeemed account, or between
    the explicit ``debit_account_id`` and ``credit_account_id``."""

    program_id: str = Field(min_length=1, max_length=40)
    amount: int = positive_amount()
    wallet_id: str | None = Field(default=None, min_length=1, max_length=40)
    debit_account_id: str | None = Field(default=None, min_length=1, max_length=40)
    credit_account_id: str | None = Field(default=None, min_length=1, max_length=40)
    expires_in_seconds: int | None = Field(default=None, strict=True, gt=0, le=366 * 86400)
    hold_key: str | None = Key
    memo: str | None = Memo

    @model_validator(mode="after")
    def _accounts(self) -> HoldCreate:
        explicit = self.debit_account_id is not None or self.credit_account_id is not None
        if self.wallet_id is not None and explicit:
            raise ValueError("give wallet_id or debit_account_id/credit_account_id, not both")
        if self.wallet_id is None and (
            self.debit_account_id is None or self.credit_account_id is None
        ):
            raise ValueError("give wallet_id, or both debit_account_id and credit_account_id")
        return self


class HoldPost(_Input):
    amount: int | None = Field(default=None, strict=True, gt=0, lt=MAX_AMOUNT)
    memo: str | None = Memo


class HoldRead(_Output):
    id: str
    program_id: str
    debit_account_id: str
    credit_account_id: str
    unit_id: str
    amount: int
    posted_amount: int
    state: Literal["pending", "posted", "voided", "expired"]
    kind: str
    hold_key: str | None
    memo: str | None
    expires_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_entry_id: str | None


# ---------------------------------------------------------------------------------------------
# Adjustments


class AdjustmentCreate(_Input):
    wallet_id: str = Field(min_length=1, max_length=40)
    # Signed: positive credits the wallet, negative debits it.
    amount: int = Field(strict=True, gt=-MAX_AMOUNT, lt=MAX_AMOUNT)
    reason: str = Field(min_length=1, max_length=1000)
    # The operator on whose behalf the key acts; recorded, never trusted (see the route).
    requested_by: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("amount")
    @classmethod
    def _non_zero(cls, amount: int) -> int:
        if amount == 0:
            raise ValueError("amount must not be zero")
        return amount


class AdjustmentDecision(_Input):
    decided_by: str | None = Field(default=None, min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=1000)


class AdjustmentRead(_Output):
    id: str
    program_id: str
    wallet_id: str
    amount: int
    reason: str
    status: Literal["pending_approval", "posted", "rejected"]
    requested_by: str
    decided_by: str | None
    decision_reason: str | None
    entry_id: str | None
    created_at: datetime
    decided_at: datetime | None


class AdjustmentPage(Page):
    items: list[AdjustmentRead]


# ---------------------------------------------------------------------------------------------
# Reconciliation


class CountersRead(BaseModel):
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @classmethod
    def of(cls, values: tuple[int, int, int, int]) -> CountersRead:
        dp, cp, dpend, cpend = values
        return cls(debits_posted=dp, credits_posted=cp, debits_pending=dpend,
                   credits_pending=cpend)


class MismatchRead(BaseModel):
    account_id: str
    stored: CountersRead
    computed: CountersRead


class ReconcileRead(BaseModel):
    program_id: str
    accounts_checked: int
    mismatches: list[MismatchRead]
    ok: bool
