"""Pure logic of partner sales claims: the normalised invoice key (formatting variants of one
invoice are the same invoice), the submission window and the review deadline. No I/O."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

STATUSES = ("submitted", "approved", "rejected", "duplicate")
# Words that often precede the number and say nothing about it.
_PREFIXES = ("INVOICE", "FACTURA", "FACTURE", "RECHNUNG", "INV", "NUMBER", "NUM", "NO", "NR")
_SELLER_SUFFIXES = ("INCORPORATED", "CORPORATION", "LIMITED", "COMPANY", "GMBH", "CORP", "INC",
                    "LLC", "LLP", "LTD", "PLC", "SRL", "SARL", "SAS", "BV", "NV", "AG", "KG",
                    "OHG", "SA", "SPA", "PTY", "CO")
# Connector words between a name and its suffixes ("Acme GmbH & Co. KG", "Smith and Co").
_SELLER_CONNECTORS = ("AND", "UND")
DEFAULT_WINDOW_DAYS = 60
DEFAULT_SLA_DAYS = 5


def _number_tokens(number: str) -> list[str]:
    tokens = re.findall(r"[A-Z]+|[0-9]+", number.upper())
    while len(tokens) > 1 and tokens[0] in _PREFIXES:
        tokens.pop(0)
    return tokens


def invoice_number_key(number: str) -> str:
    """``"INV-2026-000457"``, ``"inv 2026/457"``, ``"Invoice No. 2026-0457"`` and
    ``"#INV2026457"`` → ``"2026457"``: letter and digit runs in upper case, leading label
    words dropped, leading zeros of each digit run dropped, separators dropped.

    A number written without separators (``"INV2026000457"``) is one digit run whose inner
    zeros cannot be told from padding: :func:`invoice_number_keys` also gives the whole-number
    key, and duplicate detection compares both."""
    return "".join(t.lstrip("0") or "0" if t.isdigit() else t for t in _number_tokens(number))


def invoice_number_keys(number: str) -> tuple[str, ...]:
    """The keys one invoice number is known by (sorted, one or two): the per-run key of
    :func:`invoice_number_key` and the whole-number key — the runs joined, then the leading
    zeros of the whole dropped (``"INV-2026-000457"`` and ``"INV2026000457"`` →
    ``"2026000457"``). Two numbers are one invoice when any key is shared."""
    tokens = _number_tokens(number)
    whole = "".join(tokens)
    whole = whole.lstrip("0") or "0"
    return tuple(sorted({invoice_number_key(number), whole}))


def seller_key(seller: str) -> str:
    """``"ACME Ltd."``, ``"acme limited"``, ``"Acme, L.L.C."`` and ``"ACME GmbH & Co. KG"``
    → ``"ACME"``: letters and digits in upper case, dotted initials joined (``L.L.C.`` →
    ``LLC``), ``&``/``and`` and punctuation dropped, trailing legal suffixes dropped."""
    joined = re.sub(r"\b([^\W\d_])\.(?=[^\W\d_]\b\.?)", r"\1", seller.upper())
    words = [w for w in re.findall(r"[^\W_]+", joined) if w not in _SELLER_CONNECTORS]
    while len(words) > 1 and words[-1] in _SELLER_SUFFIXES:
        words.pop()
    return "".join(words)


def invoice_key(seller: str, number: str) -> str:
    """The key a claim is stored under: seller key and per-run number key."""
    return f"{seller_key(seller)}|{invoice_number_key(number)}"


def invoice_keys(seller: str, number: str) -> tuple[str, ...]:
    """Every key duplicate detection registers for a claim, across all members of a program
    (sorted, so concurrent claims take their register rows in one order); it includes
    :func:`invoice_key`."""
    seller_part = seller_key(seller)
    return tuple(f"{seller_part}|{n}" for n in invoice_number_keys(number))


def outside_window(invoice_date: datetime, submitted_at: datetime, window_days: int) -> bool:
    """A claim must be submitted within ``window_days`` of the invoice (and not before it)."""
    return invoice_date > submitted_at or submitted_at - invoice_date > timedelta(days=window_days)


def review_due(submitted_at: datetime, sla_days: int) -> datetime:
    return submitted_at + timedelta(days=sla_days)
