"""``allegiance import KIND FILE``: bulk import of purchases, activities, returns, accounts,
users or catalogue items from CSV, XLSX or Parquet with a progress bar (rows, rows/s, ETA), an
error report, exactly once (see docs/imports.md); ``allegiance import mapping``: saved column
mappings."""

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
from allegiance.imports import domain, mappings, service
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, err_console, fail, open_database

app = typer.Typer(help="Bulk import from CSV, XLSX or Parquet (purchases, activities, returns, "
                       "accounts, users, catalogue).",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The file: .csv, .tsv, .xlsx or .parquet.",
                                         exists=True, dir_okay=False, readable=True)]
ProgramOpt = Annotated[str, typer.Option("--program", help="The program's code or id (prg_…).")]
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
CheckOpt = Annotated[bool, typer.Option(
    "--check", help="Only read and validate the file and write the error report; store "
                    "nothing.")]


class RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- rows/s" if speed is None else f"{speed:,.0f} rows/s",
                    style="progress.data.speed")


def _mapping_file(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        fail(f"{path}: not valid YAML or JSON: {exc}")


def _import(kind: str, file: Path, program: str, tenant: str, source: str | None,
            mapping: Path | None, errors: Path | None, batch: int, quiet: bool,
            database_url: str | None, as_json: bool, check: bool) -> None:
    errors_path = errors or file.with_name(f"{file.stem}.errors.csv")
    progress = Progress(
        TextColumn(f"[bold]{kind}[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows"), RowsPerSecond(), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=err_console, disable=quiet or as_json,
    )
    task = progress.add_task(kind, total=None)
    with open_database(database_url) as db:
        with db.read() as s:
            tenants.get_tenant(s, tenant)
            program_id = tenants.program_by_code_or_id(s, tenant, program).id
            if mapping is not None:
                data = _mapping_file(mapping)
            else:  # the mapping saved for this source, if any
                data = mappings.saved_mapping(s, tenant, program_id,
                                              source or service.DEFAULT_SOURCE, kind)
        columns = domain.mapping_from(data, kind)
        with progress:
            report = service.run(
                db, tenant, program, kind, file, mapping=columns, source=source, batch=batch,
                errors_path=errors_path, actor="cli:import", check_only=check,
                on_start=lambda total: progress.update(task, total=total),
                on_progress=lambda done: progress.update(task, completed=done),
            )
    out = report.to_dict()
    if as_json:
        typer.echo(json.dumps(out))
        return
    if check:
        console.print(f"{file.name}: {report.rows} rows checked in {report.seconds:.1f}s — "
                      f"{report.checked} valid {kind}, {report.rejected_events} invalid "
                      "(nothing was stored)")
    else:
        console.print(
            f"{file.name}: {report.rows} rows in {report.seconds:.1f}s — "
            f"{report.created} new {kind}, {report.replayed} already imported, "
            f"{report.unmatched} unmatched (queued), {report.rejected_events} rejected")
    if report.rejected_rows:
        console.print(f"[yellow]{report.rejected_rows} row(s) rejected: see "
                      f"{report.errors_file}[/]")


HELP = {
    "purchases": "Import purchases: one row per purchase line; contiguous rows with the same "
                 "external_id form one purchase.",
    "activities": "Import activities: one row per activity.",
    "returns": "Import returns of imported or API purchases: one row per returned line "
               "(line_no), or one row per whole return.",
    "accounts": "Import member accounts (enrolled in the program), keyed by member_number or "
                "account_external_id.",
    "users": "Import users of accounts, keyed by external_id.",
    "catalogue": "Import rewards into the program's catalogue, keyed by code.",
}


def _command(kind: str) -> None:
    def command(file: FileArg, program: ProgramOpt, tenant: TenantOpt,
                source: SourceOpt = None, mapping: MappingOpt = None,
                errors: ErrorsOpt = None, batch: BatchOpt = service.DEFAULT_BATCH,
                quiet: QuietOpt = False, check: CheckOpt = False,
                database_url: DatabaseUrl = None, as_json: JsonFlag = False) -> None:
        _import(kind, file, program, tenant, source, mapping, errors, batch, quiet,
                database_url, as_json, check)

    command.__doc__ = HELP[kind] + " Re-importing adds nothing."
    app.command(kind)(command)


for _kind in domain.KINDS:
    _command(_kind)

mapping_app = typer.Typer(help="Column mappings saved per source (used when --mapping is not "
                               "given).", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")
KindArg = Annotated[str, typer.Argument(help=f"One of {', '.join(domain.KINDS)}.")]
SourceArg = Annotated[str, typer.Argument(help="The source the mapping is for (e.g. erp).")]


@mapping_app.command("save")
def save_mapping(kind: KindArg, source: SourceArg,
                 file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                      help="The mapping (YAML/JSON).")],
                 program: ProgramOpt, tenant: TenantOpt,
                 database_url: DatabaseUrl = None) -> None:
    """Save (or replace) the mapping of a source's files of one kind."""
    data = _mapping_file(file)
    with open_database(database_url) as db, db.transaction() as s:
        program_id = tenants.program_by_code_or_id(s, tenant, program).id
        mappings.save_mapping(s, tenant, program_id, source, kind, data, actor="cli")
    console.print(f"saved the {kind} mapping of source {source}")


@mapping_app.command("show")
def show_mapping(kind: KindArg, source: SourceArg, program: ProgramOpt, tenant: TenantOpt,
                 database_url: DatabaseUrl = None) -> None:
    """Print a saved mapping as YAML."""
    with open_database(database_url) as db, db.read() as s:
        program_id = tenants.program_by_code_or_id(s, tenant, program).id
        row = mappings.get_mapping(s, tenant, program_id, source, kind)
        typer.echo(yaml.safe_dump(dict(row.mapping), sort_keys=False, allow_unicode=True))


@mapping_app.command("list")
def list_mappings(program: ProgramOpt, tenant: TenantOpt,
                  database_url: DatabaseUrl = None) -> None:
    """List the saved mappings of a program."""
    with open_database(database_url) as db, db.read() as s:
        program_id = tenants.program_by_code_or_id(s, tenant, program).id
        for row in mappings.list_mappings(s, tenant, program_id):
            console.print(f"{row.source}\t{row.kind}\t{', '.join(sorted(row.mapping))}")
