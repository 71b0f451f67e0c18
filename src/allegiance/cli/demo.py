"""``allegiance demo``: the demo tenant for the README's tour."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from allegiance.demo import build_demo
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, open_database


def demo(
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
    url: Annotated[
        str, typer.Option("--url", help="Where the API is served, for the printed hints.")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Create the demo tenant (once) and print its programs and a new admin API key."""
    with open_database(database_url) as db:
        result = build_demo(db)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    state = "created" if result.created else "already there"
    out = console.print
    out(f"Demo tenant [bold]Demo Co[/] ({state}): {result.tenant_id}", soft_wrap=True)
    out("Programs:")
    for program in result.programs:
        units = ", ".join(f"{u.code} ({u.kind}) {u.id}" for u in program.units)
        out(f"  {program.name:<16} {program.id}  unit {units}", soft_wrap=True, highlight=False)
    if result.accounts:
        out("Accounts and their Partner Rewards wallets:")
        for role, account_id in result.accounts.items():
            wallet = result.wallets.get(role, "")
            out(f"  {role:<13} {account_id}  {wallet}", soft_wrap=True, highlight=False)
    out(f"API: {url}   docs: {url}/docs", soft_wrap=True)
    if result.sign_ins:
        out("Web apps (demo sign-ins):")
        for app, email, password, who in result.sign_ins:
            out(f"  {url}/{app}/  {email} / {password}  ({who})", soft_wrap=True,
                highlight=False)
    out("Paste into your shell for the README's tour (a new key on every run; earlier keys "
        "stay valid):", soft_wrap=True)
    typer.echo(f"export ALLEGIANCE_KEY={result.api_key}")
    rewards = next((p for p in result.programs if p.code == "partner-rewards"), None)
    if rewards is not None:
        typer.echo(f"export PROGRAM_ID={rewards.id}")
