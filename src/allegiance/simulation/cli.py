"""``allegiance simulate --program DRAFT.yaml --from DATE --to DATE``: replay a period's events
under a draft definition and compare with the definition in force (docs/simulation.md)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
import yaml

from allegiance import tenants
from allegiance.kit.cli import DatabaseUrl, console, err_console, fail, open_database
from allegiance.simulation import output, service

Format = Annotated[str, typer.Option("--format", help="table, csv or json.")]


def parse_moment(text: str, zone: str, *, end: bool) -> datetime:
    """A date (the start of that day in ``zone``; for the period's end, the start of the next
    day, so the end date is included) or an ISO date-time (with offset, or in ``zone``)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1 if end else 0), time(),
                                      ZoneInfo(zone))
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        fail(f"{text!r} is not a date (YYYY-MM-DD) or an ISO date-time")
    return moment


def simulate(
    program: Annotated[Path, typer.Option("--program", exists=True, dir_okay=False,
                                          help="The draft definition (YAML or JSON).")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD) or date-time.")],
    end: Annotated[str, typer.Option("--to", help="Last day, included (YYYY-MM-DD), or the "
                                                  "date-time the period ends (excluded).")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant id (ten_…).")],
    fmt: Format = "table",
    out: Annotated[Path | None, typer.Option("--out", dir_okay=False,
                                             help="Write the CSV/JSON here.")] = None,
    charts: Annotated[Path | None, typer.Option("--charts", file_okay=False,
                                                help="Write SVG charts to this folder.")] = None,
    top: Annotated[int, typer.Option("--top", min=0, max=1000,
                                     help="Top earners to list.")] = 10,
    database_url: DatabaseUrl = None,
) -> None:
    """Replay the period's events under the draft (columnar) and compare with the version in
    force: points issued, cost, liability at the end, tiers, top earners, rules. Writes
    nothing to the database."""
    if fmt not in ("table", "csv", "json"):
        fail("--format is table, csv or json")
    try:
        draft: Any = yaml.safe_load(program.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        fail(f"{program}: not valid YAML or JSON: {exc}")
    with open_database(database_url) as db, db.read() as s:
        tenants.get_tenant(s, tenant)
        program_id = service.program_for(s, tenant, draft)
        zone = tenants.get_program(s, tenant, program_id).time_zone
        with err_console.status("simulating…"):
            result = service.simulate(
                s, tenant, program_id, draft, parse_moment(start, zone, end=False),
                parse_moment(end, zone, end=True), top=top).to_dict()
    if charts is not None:
        for path in output.write_charts(result, charts):
            err_console.print(f"chart: {path}")
    if fmt == "table":
        output.print_tables(result, console)
        return
    text = output.to_csv(result) if fmt == "csv" else output.to_json(result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"written: {out}")
