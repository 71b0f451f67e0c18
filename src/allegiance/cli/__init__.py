"""The ``allegiance`` command: one Typer root that mounts each area's sub-commands.

To add an area, write ``cli/<area>.py`` with a ``typer.Typer`` named ``app`` (or a command
function) and list it below.
"""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import OperationalError, ProgrammingError

from allegiance.analytics import cli as analytics_cli
from allegiance.cli import audit, check, db, demo, export, fx, jobs, ledger, operator, serve, tenant
from allegiance.definitions import cli as definitions_cli
from allegiance.imports import cli as imports_cli
from allegiance.kit.cli import err_console
from allegiance.kit.errors import AllegianceError
from allegiance.scenarios import cli as scenarios_cli
from allegiance.simulation import cli as simulation_cli

app = typer.Typer(
    name="allegiance",
    help="Allegiance: headless B2B loyalty on one double-entry ledger.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

SUB_APPS: tuple[tuple[str, typer.Typer], ...] = (
    ("db", db.app),
    ("tenant", tenant.app),
    ("operator", operator.app),
    ("ledger", ledger.app),
    ("audit", audit.app),
    ("fx", fx.app),
    ("jobs", jobs.app),
    ("program", definitions_cli.app),
    ("scenario", scenarios_cli.app),
    ("import", imports_cli.app),
)
for _name, _sub in SUB_APPS:
    app.add_typer(_sub, name=_name)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.command("export")(export.export)
app.command("check-settings")(check.check_settings)
app.command("simulate")(simulation_cli.simulate)
app.command("report")(analytics_cli.report)


def main() -> None:
    """The console script: domain errors and a missing schema become one-line messages."""
    try:
        app()
    except AllegianceError as exc:
        where = f" ({exc.field})" if getattr(exc, "field", None) else ""
        err_console.print(f"[bold red]error {exc.code}[/]{where}: {exc}")
        sys.exit(1)
    except (OperationalError, ProgrammingError) as exc:
        text = str(exc.orig)
        if "no such table" in text or "does not exist" in text:
            err_console.print(
                f"[bold red]error:[/] {text.splitlines()[0]} — "
                "run `allegiance db upgrade` first."
            )
            sys.exit(1)
        raise
