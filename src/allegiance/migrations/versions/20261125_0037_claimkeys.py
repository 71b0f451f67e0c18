"""claimkeys: re-key the claims' duplicate register with the fixed invoice key

The invoice key stripped the leading zeros of each digit run, so ``INV-2026-000457`` (key
``2026457``) and ``INV2026000457`` (``2026000457``) were two invoices; the seller key kept
``KG``, ``L.L.C.`` and ``&``/``and``. A claim now registers every key of its invoice
(``claims.domain.invoice_keys``: the per-run key and the whole-number key, the seller key
with those suffixes dropped). Claims stored before keep the old rows, and a new copy written
the other way would not be seen: this data migration recomputes ``sales_claim.invoice_key``
of every claim and the register rows of the claims holding one (submitted or approved).

It cannot be done in SQL portably (per-run zero stripping needs regular expressions SQLite
lacks), so it runs in Python with a frozen copy of the key functions (the application's may
change later; a migration must not). A key already held by another claim (two historical
claims of one invoice the old key missed) stays with the first (by ``created_at``): an
approved claim is not re-flagged here — the report lists them for a person to review.

Revision ID: 0037_claimkeys
Revises: 0036_segmentinputs
Create Date: 2026-11-25 08:20:00
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from allegiance.kit import tenancy

revision: str = '0037_claimkeys'
down_revision: str | None = '0036_segmentinputs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOG = logging.getLogger("alembic.runtime.migration")
_PREFIXES = ("INVOICE", "FACTURA", "FACTURE", "RECHNUNG", "INV", "NUMBER", "NUM", "NO", "NR")
_SELLER_SUFFIXES = ("INCORPORATED", "CORPORATION", "LIMITED", "COMPANY", "GMBH", "CORP", "INC",
                    "LLC", "LLP", "LTD", "PLC", "SRL", "SARL", "SAS", "BV", "NV", "AG", "KG",
                    "OHG", "SA", "SPA", "PTY", "CO")
_CONNECTORS = ("AND", "UND")


def _number_keys(number: str) -> list[str]:
    tokens = re.findall(r"[A-Z]+|[0-9]+", number.upper())
    while len(tokens) > 1 and tokens[0] in _PREFIXES:
        tokens.pop(0)
    per_run = "".join(t.lstrip("0") or "0" if t.isdigit() else t for t in tokens)
    whole = "".join(tokens).lstrip("0") or "0"
    return sorted({per_run, whole})


def _seller_key(seller: str) -> str:
    joined = re.sub(r"\b([^\W\d_])\.(?=[^\W\d_]\b\.?)", r"\1", seller.upper())
    words = [w for w in re.findall(r"[^\W_]+", joined) if w not in _CONNECTORS]
    while len(words) > 1 and words[-1] in _SELLER_SUFFIXES:
        words.pop()
    return "".join(words)


def _rekey(all_keys: bool) -> None:
    """``all_keys``: register every key of each claim (the upgrade); otherwise only its
    per-run key, as before (the downgrade; seller keys stay the new ones)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # forced row-level security: act as the system
        bind.execute(sa.text("SELECT set_config(:n, :v, true)"),
                     {"n": tenancy.SETTING, "v": tenancy.SYSTEM})
    updates = [{"key": f"{_seller_key(s)}|{_run_key(n)}", "t": t, "i": i}
               for t, i, s, n in bind.execute(sa.text(
                   "SELECT tenant_id, id, seller, invoice_number FROM sales_claim")).all()]
    if updates:
        bind.execute(sa.text(
            "UPDATE sales_claim SET invoice_key = :key WHERE tenant_id = :t AND id = :i"),
            updates)
    claims = bind.execute(sa.text(
        "SELECT c.tenant_id, c.id, c.program_id, c.seller, c.invoice_number, k.created_at "
        "FROM sales_claim c JOIN claim_invoice_key k ON k.tenant_id = c.tenant_id "
        "AND k.program_id = c.program_id AND k.claim_id = c.id "
        "ORDER BY k.created_at, c.id")).all()
    taken: dict[tuple[str, str, str], str] = {}
    rows = []
    seen: set[tuple[str, str]] = set()
    for r in claims:
        if (r.tenant_id, r.id) in seen:
            continue
        seen.add((r.tenant_id, r.id))
        seller = _seller_key(r.seller)
        numbers = _number_keys(r.invoice_number) if all_keys else [_run_key(r.invoice_number)]
        for number in numbers:
            key = (r.tenant_id, r.program_id, f"{seller}|{number}")
            if key in taken:
                _LOG.warning("claim %s shares invoice key %s with claim %s: review it",
                             r.id, key[2], taken[key])
                continue
            taken[key] = r.id
            rows.append({"tenant_id": r.tenant_id, "program_id": r.program_id,
                         "invoice_key": key[2], "claim_id": r.id, "created_at": r.created_at})
    bind.execute(sa.text("DELETE FROM claim_invoice_key"))
    if rows:
        bind.execute(sa.text(
            "INSERT INTO claim_invoice_key (tenant_id, program_id, invoice_key, claim_id, "
            "created_at) VALUES (:tenant_id, :program_id, :invoice_key, :claim_id, "
            ":created_at)"), rows)


def _run_key(number: str) -> str:
    tokens = re.findall(r"[A-Z]+|[0-9]+", number.upper())
    while len(tokens) > 1 and tokens[0] in _PREFIXES:
        tokens.pop(0)
    return "".join(t.lstrip("0") or "0" if t.isdigit() else t for t in tokens)


def upgrade() -> None:
    _rekey(all_keys=True)


def downgrade() -> None:
    _rekey(all_keys=False)
