"""``allegiance report KIND --program P``: any report as a table, CSV or JSON, with an optional
chart (``--chart out.svg``, or ``out.png`` with matplotlib). See docs/analytics.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.analytics import render
from allegiance.analytics.common import Report, jsonable
from allegiance.analytics.reports import KINDS, Options, run
from allegiance.kit import priority
from allegiance.kit.cli import DatabaseUrl, console, fail, open_database


def _program(session: Session, program: str, tenant: str | None) -> tuple[str, str]:
    """(tenant id, program id) of a program code or id; --tenant when the code is ambiguous."""
    model = tenants.Program
    query = select(model.tenant_id, model.id).where(or_(model.code == program,
                                                        model.id == program))
    if tenant is not None:
        query = query.where(model.tenant_id == tenant)
    found = session.execute(query).all()
    if not found:
        fail(f"no program {program!r}" + (f" in tenant {tenant}" if tenant else ""))
    if len(found) > 1:
        fail(f"several tenants have a program {program!r}: give --tenant")
    return found[0][0], found[0][1]


def _cell(value: object) -> str:
    shown = jsonable(value)
    if shown is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(shown)


def _print_table(report: Report) -> None:
    table = Table(title=report.title)
    for column in report.columns:
        table.add_column(column)
    for row in report.rows:
        table.add_row(*(_cell(row.get(c)) for c in report.columns))
    console.print(table)
    for key, value in report.summary.items():
        if isinstance(value, dict):
            console.print(f"[bold]{key}[/]: " + ", ".join(
                f"{k} {_cell(v)}" for k, v in value.items()))
        elif isinstance(value, list):
            console.print(f"[bold]{key}[/]: {json.dumps(jsonable(value))}")
        else:
            console.print(f"[bold]{key}[/]: {_cell(value)}")


def report(
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(KINDS) + ".")],
    program: Annotated[str, typer.Option("--program", help="The program's code or id.")],
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="The tenant id, when several tenants have that program code.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, inclusive.")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="liability, breakage, forecast: as at the end of this day.")] = None,
    calibration_end: Annotated[str | None, typer.Option(
        "--calibration-end", help="clv: last day of the calibration period.")] = None,
    horizon_weeks: Annotated[float, typer.Option(
        "--horizon-weeks", min=0, help="clv: horizon of the expected value.")] = 52.0,
    discount: Annotated[float, typer.Option(
        "--discount", help="clv: discount rate a month.")] = 0.0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="clv: members listed.")] = 20,
    survey_type: Annotated[str, typer.Option(
        "--survey-type", help="nps: the activity type of the answers.")] = "nps",
    launch: Annotated[str | None, typer.Option(
        "--launch", help="uplift, penetration, roi: the launch day.")] = None,
    bands: Annotated[int, typer.Option("--bands", min=1, help="uplift, roi: size bands.")] = 4,
    margin: Annotated[float | None, typer.Option(
        "--margin", min=0, max=1, help="roi: gross margin rate.")] = None,
    fixed_cost: Annotated[str | None, typer.Option(
        "--fixed-cost", help="roi: fixed cost in the base currency.")] = None,
    months: Annotated[int, typer.Option("--months", min=1, max=60,
                                        help="forecast: months ahead.")] = 12,
    output: Annotated[str, typer.Option(
        "--format", help="table, csv or json.")] = "table",
    chart: Annotated[Path | None, typer.Option(
        "--chart", dir_okay=False, help="Also draw the chart: out.svg, or out.png "
                                        "(needs matplotlib: the 'charts' extra).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Compute a report of a program (see docs/analytics.md for each one's definition)."""
    if output not in ("table", "csv", "json"):
        fail("--format must be table, csv or json")
    if kind not in KINDS:
        fail(f"unknown report {kind!r}; one of: {', '.join(KINDS)}")
    options = Options(start=start, end=end, at=at, calibration_end=calibration_end,
                      horizon_weeks=horizon_weeks, monthly_discount=discount, limit=limit,
                      survey_type=survey_type, launch=launch, bands=bands, margin=margin,
                      fixed_cost=fixed_cost, months=months)
    priority.background()  # a report is background work: the API's requests go first
    with open_database(database_url) as db, db.read() as session:
        tenant_id, program_id = _program(session, program, tenant)
        result = run(session, tenant_id, program_id, kind, options)
    if output == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif output == "csv":
        typer.echo(render.to_csv(result), nl=False)
    else:
        _print_table(result)
    if chart is not None:
        render.write_chart(result, chart)
        if output == "table":
            console.print(f"chart written to {chart}")
