"""Migration ``0037_claimkeys`` (SQLite and PostgreSQL): claims stored under the old invoice
key (per-run zeros stripped, ``KG``/``&`` kept in the seller) are re-keyed, so a copy
written without separators or with another seller spelling after the upgrade is a
duplicate; a rejected claim holds no key before or after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from allegiance import claims
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.migrate import alembic_config, grant_app_role, upgrade
from tests.integration.money_support import Money
from tests.support import databases

REVISION = "0037_claimkeys"
NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


def _owner(db: Database) -> str:
    return db.url if db.url.startswith("sqlite") else databases.admin_url_of(db.url)


def _submit(m: Money, number: str, seller: str) -> claims.SalesClaim:
    with m.db.transaction() as s:
        row = claims.submit(s, m.tenant_id, m.program_id, account_id=m.account(),
                            invoice_number=number, invoice_date=NOW - timedelta(days=1),
                            seller=seller, proof_ref="proof", actor="partner",
                            lines=[{"sku": "S", "amount": 1_000}])
        s.expunge(row)
        return row


def test_the_migration_rekeys_claims_stored_under_the_old_key(db: Database) -> None:
    with clock.frozen(NOW):
        m = Money(db)
        old = _submit(m, "INV-2026-000457", "Acme GmbH & Co. KG")
        db.dispose()
        config = alembic_config(_owner(db))
        before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
        assert isinstance(before, str)
        command.downgrade(config, before)
        # what the old key function stored: one row, per-run zeros stripped, suffixes kept
        with db.transaction() as s:
            if not db.url.startswith("sqlite"):
                s.execute(text("SELECT set_config('allegiance.tenant_id', '*', true)"))
            s.execute(text("UPDATE sales_claim SET invoice_key = 'ACMEGMBHCOKG|2026457'"))
            s.execute(text("UPDATE claim_invoice_key SET invoice_key = 'ACMEGMBHCOKG|2026457'"))
        db.dispose()
        upgrade(_owner(db))
        if not db.url.startswith("sqlite"):
            grant_app_role(_owner(db))
        with db.read() as s:
            keys = sorted(s.scalars(select(claims.ClaimInvoiceKey.invoice_key).where(
                claims.ClaimInvoiceKey.claim_id == old.id)))
            stored = s.scalar(select(claims.SalesClaim.invoice_key).where(
                claims.SalesClaim.id == old.id))
        assert keys == ["ACME|2026000457", "ACME|2026457"] and stored == "ACME|2026457"
        copy = _submit(m, "INV2026000457", "ACME GmbH")
        assert (copy.status, copy.duplicate_of) == ("duplicate", old.id)
        assert _submit(m, "INV2026000458", "ACME GmbH").status == "submitted"  # control
