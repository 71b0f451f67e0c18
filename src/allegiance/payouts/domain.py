"""Pure logic of payouts: who is paid, and the payout file. No I/O."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

CSV_COLUMNS = ("item_id", "owner_type", "owner_id", "member_number", "name", "currency",
               "amount_minor", "amount", "status", "reference")


@dataclass(frozen=True)
class Row:
    item_id: str
    owner_type: str
    owner_id: str
    member_number: str
    name: str
    currency: str
    amount_minor: int
    exponent: int
    status: str
    reference: str


def payable(available: int, minimum: int) -> int:
    """What a wallet is paid: all of its available balance once it reaches the minimum."""
    return available if available > 0 and available >= minimum else 0


def major(amount: int, exponent: int) -> str:
    return format(Decimal(amount).scaleb(-exponent), f".{exponent}f")


def to_csv(rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.item_id, r.owner_type, r.owner_id, safe_cell(r.member_number),
                         safe_cell(r.name), r.currency, r.amount_minor,
                         major(r.amount_minor, r.exponent), r.status, safe_cell(r.reference)])
    return out.getvalue()


def safe_cell(text: str) -> str:
    """No spreadsheet formulas in a finance file (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def total(rows: Iterable[Row]) -> int:
    return sum(r.amount_minor for r in rows)
