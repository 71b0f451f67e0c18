"""``allegiance scenario run FILE…``: play scenarios and report every expectation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from allegiance.kit.cli import JsonFlag, console

if TYPE_CHECKING:
    from allegiance.scenarios.runner import Report

app = typer.Typer(help="Scenarios: timed events and expectations run against a fresh "
                       "database through the API.", no_args_is_help=True)


def _table(report: Report) -> Table:
    status = "[green]passed[/]" if report.passed else "[red]FAILED[/]"
    table = Table("step", "expectation", "result", "detail",
                  title=f"{report.name}: {status} ({len(report.outcomes) - len(report.failures)}"
                        f"/{len(report.outcomes)})", title_justify="left")
    for outcome in report.outcomes:
        table.add_row(
            "setup" if outcome.step < 0 else str(outcome.step), outcome.description,
            "[green]pass[/]" if outcome.passed else "[bold red]FAIL[/]", outcome.detail,
        )
    return table


@app.command("run")
def run(
    files: Annotated[list[Path], typer.Argument(help="Scenario files (YAML).", exists=True,
                                                dir_okay=False, readable=True)],
    as_json: JsonFlag = False,
) -> None:
    """Run each scenario on a fresh database; exit 1 when any expectation fails."""
    from allegiance.scenarios.runner import dumps, run_file  # the test client loads lazily

    reports = [run_file(path) for path in files]
    if as_json:
        typer.echo(dumps(reports))
    else:
        for report in reports:
            console.print(_table(report))
    if not all(r.passed for r in reports):
        raise typer.Exit(1)
