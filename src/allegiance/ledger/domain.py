"""Pure ledger logic: balanced entries, balances, lot consumption, expiry dates. No I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from allegiance.kit.expiry import ExpiryPolicy, add_months, lot_expiry
from allegiance.kit.money import MAX_AMOUNT

__all__ = ["ExpiryPolicy", "add_months", "lot_expiry"]


class Side(StrEnum):
    DEBIT = "D"
    CREDIT = "C"


@dataclass(frozen=True)
class Line:
    """A posting to be written: ``amount`` of the account's unit, debit or credit."""

    account_id: str
    unit_id: str
    side: Side
    amount: int
    reverses_line_no: int | None = None


@dataclass(frozen=True)
class Counters:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


@dataclass(frozen=True)
class Balance:
    posted: int
    pending_in: int
    pending_out: int
    available: int


class EntryProblem(ValueError):
    """An entry that can never be written; ``field`` names the offending part."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_lines(lines: Sequence[Line]) -> None:
    """Raise :class:`EntryProblem` unless the lines form a valid balanced entry."""
    if len(lines) < 2:
        raise EntryProblem("an entry needs at least two postings", "postings")
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for index, line in enumerate(lines):
        amount = line.amount
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise EntryProblem("amounts are integers", f"postings[{index}].amount")
        if amount <= 0:
            raise EntryProblem("amounts must be positive", f"postings[{index}].amount")
        if amount >= MAX_AMOUNT:
            raise EntryProblem("amount is out of range", f"postings[{index}].amount")
        totals[line.unit_id][0 if line.side is Side.DEBIT else 1] += amount
    for unit_id, (debits, credits) in totals.items():
        if debits != credits:
            raise EntryProblem(
                f"debits ({debits}) and credits ({credits}) of unit {unit_id} differ", "postings"
            )


def balance(normal: str, c: Counters) -> Balance:
    """Posted, pending and available balance of an account on its normal side."""
    if normal == "credit":
        posted = c.credits_posted - c.debits_posted
        return Balance(posted, c.credits_pending, c.debits_pending, posted - c.debits_pending)
    posted = c.debits_posted - c.credits_posted
    return Balance(posted, c.debits_pending, c.credits_pending, posted - c.credits_pending)


def net_deltas(lines: Iterable[Line]) -> dict[str, tuple[int, int]]:
    """Per account, the (debit, credit) totals an entry adds."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        out[line.account_id][0 if line.side is Side.DEBIT else 1] += line.amount
    return {k: (v[0], v[1]) for k, v in out.items()}


@dataclass(frozen=True)
class OpenLot:
    lot_id: str
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


def consume_lots(lots: Sequence[OpenLot], amount: int) -> list[tuple[str, int]]:
    """Which lots a debit of ``amount`` consumes: soonest to expire first, then oldest.

    Lots without an expiry go last. Returns (lot_id, taken) pairs; the sum may be less than
    ``amount`` when the wallet is allowed below zero.
    """
    far = datetime.max.replace(tzinfo=None)
    order = sorted(
        lots,
        key=lambda lot: (
            lot.expires_at.replace(tzinfo=None) if lot.expires_at else far,
            lot.earned_at.replace(tzinfo=None),
            lot.lot_id,
        ),
    )
    taken: list[tuple[str, int]] = []
    left = amount
    for lot in order:
        if left <= 0:
            break
        use = min(lot.remaining, left)
        if use > 0:
            taken.append((lot.lot_id, use))
            left -= use
    return taken


def reversible_amounts(
    original: Sequence[tuple[int, int]], already: Mapping[int, int]
) -> dict[int, int]:
    """Per original line number, how much may still be reversed."""
    return {line_no: amount - already.get(line_no, 0) for line_no, amount in original}


def split_for_shortfall(amount: int, available: int, floor: int) -> tuple[int, int]:
    """A debit that may only take a wallet down to ``floor``: (from wallet, shortfall)."""
    room = max(0, available - floor)
    take = min(amount, room)
    return take, amount - take


def inactive_since(last_activity_at: datetime | None, now: datetime, months: int) -> bool:
    if last_activity_at is None:
        return False
    return add_months(last_activity_at, months) <= now


def hold_deadline(created_at: datetime, timeout_seconds: int | None) -> datetime | None:
    if timeout_seconds is None:
        return None
    return created_at + timedelta(seconds=timeout_seconds)
