"""Pure logic of partner sales claims: the normalised invoice key (formatting variants of one
invoice are the same invoice), the submission window and the review deadline. No I/O."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

STATUSES = ("submitted", "approved", "rejected", "duplicate")
# Words that often precede the number and say nothing about it.
_PREFIXES = ("INVOICE", "FACTURA", "FACTURE", "RECHNUNG", "INV", "NUMBER", "NUM", "NO", "NR")
_SELLER_SUFFIXES = ("INCORPORATED", "CORPORATION", "LIMITED", "COMPANY", "GMBH", "CORP", "INC",
                    "LLC", "LTD", "PLC", "SRL", "SAS", "BV", "AG", "SA", "CO")
DEFAULT_WINDOW_DAYS = 60
DEFAULT_SLA_DAYS = 5


def invoice_number_key(number: str) -> str:
    """``"INV-2026-000457"``, ``"inv 2026/457"``, ``"Invoice No. 2026-0457"`` and
    ``"#INV2026457"`` → ``"2026457"``: letter and digit runs in upper case, leading label
    words dropped, leading zeros of each digit run dropped, separators dropped."""
    tokens = re.findall(r"[A-Z]+|[0-9]+", number.upper())
    while len(tokens) > 1 and tokens[0] in _PREFIXES:
        tokens.pop(0)
    return "".join(t.lstrip("0") or "0" if t.isdigit() else t for t in tokens)


def seller_key(seller: str) -> str:
    """``"ACME Ltd."`` and ``"acme limited"`` → ``"ACME"``."""
    words = re.findall(r"[^\W_]+", seller.upper())
    while len(words) > 1 and words[-1] in _SELLER_SUFFIXES:
        words.pop()
    return "".join(words)


def invoice_key(seller: str, number: str) -> str:
    """The key duplicate detection compares, across all members of a program."""
    return f"{seller_key(seller)}|{invoice_number_key(number)}"


def outside_window(invoice_date: datetime, submitted_at: datetime, window_days: int) -> bool:
    """A claim must be submitted within ``window_days`` of the invoice (and not before it)."""
    return invoice_date > submitted_at or submitted_at - invoice_date > timedelta(days=window_days)


def review_due(submitted_at: datetime, sla_days: int) -> datetime:
    return submitted_at + timedelta(days=sla_days)
