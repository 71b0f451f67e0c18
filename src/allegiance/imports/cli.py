"""``allegiance import purchases|activities FILE``: bulk import from CSV or Parquet
with a progress bar (rows, rows/s, ETA), an error report, exactly once (see docs/imports.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from allegiance import tenants
from allegiance.imports import domain, service
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, err_console, fail, open_database

app = typer.Typer(help="Bulk import of purchases and activities from CSV or Parquet.",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The file: .csv or .parquet.",
                                         exists=True, dir_okay=False, readable=True)]
ProgramOpt = Annotated[str, typer.Option("--program", help="The program's code.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant id (ten_…).")]
SourceOpt = Annotated[str | None, typer.Option(
    "--source", help="The events' source: (program, source, external_id) is unique, so keep it "
                     f"the same across re-imports (default: {service.DEFAULT_SOURCE}).")]
MappingOpt = Annotated[Path | None, typer.Option(
    "--mapping", exists=True, dir_okay=False, readable=True,
    help="A YAML/JSON column mapping (see docs/imports.md).")]
ErrorsOpt = Annotated[Path | None, typer.Option(
    "--errors", dir_okay=False,
    help="Where to write the error report CSV (default: FILE.errors.csv next to the file).")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, max=100_000,
                                       help="Rows per transaction.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]


class RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- rows/s" if speed is None else f"{speed:,.0f} rows/s",
                    style="progress.data.speed")


def _mapping(path: Path | None, kind: str) -> domain.ColumnMapping:
    if path is None:
        return domain.ColumnMapping()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        fail(f"{path}: not valid YAML or JSON: {exc}")
    return domain.mapping_from(data, kind)


def _import(kind: str, file: Path, program: str, tenant: str, source: str | None,
            mapping: Path | None, errors: Path | None, batch: int, quiet: bool,
            database_url: str | None, as_json: bool) -> None:
    errors_path = errors or file.with_name(f"{file.stem}.errors.csv")
    columns = domain.ColumnMapping() if mapping is None else _mapping(mapping, kind)
    progress = Progress(
        TextColumn(f"[bold]{kind}[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows"), RowsPerSecond(), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=err_console, disable=quiet or as_json,
    )
    task = progress.add_task(kind, total=None)
    with open_database(database_url) as db, progress:
        with db.read() as s:
            tenants.get_tenant(s, tenant)
        report = service.run(
            db, tenant, program, kind, file, mapping=columns, source=source, batch=batch,
            errors_path=errors_path, actor="cli:import",
            on_start=lambda total: progress.update(task, total=total),
            on_progress=lambda done: progress.update(task, completed=done),
        )
    out = report.to_dict()
    if as_json:
        typer.echo(json.dumps(out))
        return
    console.print(
        f"{file.name}: {report.rows} rows in {report.seconds:.1f}s — "
        f"{report.created} new {kind}, {report.replayed} already imported, "
        f"{report.unmatched} unmatched (queued), {report.rejected_events} rejected")
    if report.rejected_rows:
        console.print(f"[yellow]{report.rejected_rows} row(s) rejected: see "
                      f"{report.errors_file}[/]")


@app.command("purchases")
def purchases(file: FileArg, program: ProgramOpt, tenant: TenantOpt, source: SourceOpt = None,
              mapping: MappingOpt = None, errors: ErrorsOpt = None,
              batch: BatchOpt = service.DEFAULT_BATCH, quiet: QuietOpt = False,
              database_url: DatabaseUrl = None, as_json: JsonFlag = False) -> None:
    """Import purchases: one row per purchase line; contiguous rows with the same
    external_id form one purchase. Re-importing adds nothing."""
    _import("purchases", file, program, tenant, source, mapping, errors, batch, quiet,
            database_url, as_json)


@app.command("activities")
def activities(file: FileArg, program: ProgramOpt, tenant: TenantOpt, source: SourceOpt = None,
               mapping: MappingOpt = None, errors: ErrorsOpt = None,
               batch: BatchOpt = service.DEFAULT_BATCH, quiet: QuietOpt = False,
               database_url: DatabaseUrl = None, as_json: JsonFlag = False) -> None:
    """Import activities: one row per activity. Re-importing adds nothing."""
    _import("activities", file, program, tenant, source, mapping, errors, batch, quiet,
            database_url, as_json)
