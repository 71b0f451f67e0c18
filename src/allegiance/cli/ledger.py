"""``allegiance ledger``: checks of the ledger's integrity."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table
from sqlalchemy import select

from allegiance import ledger
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, open_database
from allegiance.kit.models import Tenant

app = typer.Typer(help="Ledger integrity: reconciliation and the journal's hash chain.",
                  no_args_is_help=True)

COUNTERS = ("debits posted", "credits posted", "debits pending", "credits pending")


@app.command("reconcile")
def reconcile(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all).")
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute every balance from the postings and verify each journal's hash chain.

    Exits with status 1 when a stored balance differs from its postings or a chain is broken.
    """
    with open_database(database_url) as db, db.read() as session:
        checked, mismatches = ledger.reconcile(session, tenant)
        tenant_ids = [tenant] if tenant else list(
            session.scalars(select(Tenant.id).order_by(Tenant.id))
        )
        broken = {t: seq for t in tenant_ids if (seq := ledger.verify_chain(session, t)) is not None}
    if as_json:
        typer.echo(json.dumps({
            "accounts_checked": checked,
            "mismatches": [
                {"tenant_id": m.tenant_id, "account_id": m.account_id,
                 "stored": list(m.stored), "computed": list(m.computed)}
                for m in mismatches
            ],
            "broken_chains": [{"tenant_id": t, "first_bad_seq": s} for t, s in broken.items()],
        }))
    else:
        _print(checked, len(tenant_ids), mismatches, broken)
    if mismatches or broken:
        raise typer.Exit(1)


def _print(
    checked: int, tenants_checked: int, mismatches: list[ledger.Mismatch], broken: dict[str, int]
) -> None:
    by_tenant: dict[str, list[ledger.Mismatch]] = {}
    for m in mismatches:
        by_tenant.setdefault(m.tenant_id, []).append(m)
    for tenant_id, rows in by_tenant.items():
        table = Table(
            Column("account", no_wrap=True, min_width=30), "counter", "stored", "from postings",
            title=f"Balances of {tenant_id} that differ from their postings",
            title_style="bold red",
        )
        for m in rows:
            for label, stored, computed in zip(COUNTERS, m.stored, m.computed, strict=True):
                if stored != computed:
                    table.add_row(m.account_id, label, f"{stored:,}", f"{computed:,}")
        console.print(table)
    for tenant_id, seq in broken.items():
        console.print(f"[bold red]Journal hash chain of {tenant_id} breaks at entry #{seq}.[/]")
    if not mismatches and not broken:
        console.print(
            f"[green]OK[/]: {checked:,} ledger accounts agree with their postings; "
            f"{tenants_checked:,} journal chain(s) verified."
        )
