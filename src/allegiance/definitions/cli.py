"""``allegiance program``: validate, apply, export and diff program definitions (YAML/JSON).

The database URL comes from ``--database-url`` or ``ALLEGIANCE_DATABASE_URL`` as in every other
command (the shared options live in :mod:`allegiance.kit.cli`).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from allegiance import tenants
from allegiance.definitions import service
from allegiance.definitions.diff import diff, render
from allegiance.definitions.validation import Problem, normalise, validate
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, fail, open_database

app = typer.Typer(help="Programs as code: validate, apply, export and diff definitions.",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="A program definition, YAML or JSON.",
                                         exists=True, dir_okay=False, readable=True)]
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant id (ten_…).")]


def load(path: Path) -> Any:
    """A definition file as plain data (YAML is a superset of JSON)."""
    try:
        return normalise(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        fail(f"{path}: not valid YAML or JSON: {exc}")


def _problems_table(problems: list[Problem], title: str) -> Table:
    table = Table("path", "problem", title=title, title_justify="left")
    for problem in problems:
        table.add_row(problem.path, problem.message)
    return table


@app.command("validate")
def validate_files(
    files: Annotated[list[Path], typer.Argument(help="Program definitions, YAML or JSON.",
                                                exists=True, dir_okay=False, readable=True)],
    as_json: JsonFlag = False,
) -> None:
    """Check definitions; lists every problem with its path. Exit 1 when there is any."""
    results = {str(file): validate(load(file)) for file in files}
    if as_json:
        out = [{"file": name, "valid": not problems,
                "problems": [p.to_dict() for p in problems]}
               for name, problems in results.items()]
        typer.echo(json.dumps(out[0] if len(out) == 1 else out))
    else:
        for name, problems in results.items():
            if problems:
                console.print(_problems_table(problems, f"{name}: {len(problems)} problem(s)"))
            else:
                console.print(f"[green]{name}: valid[/]")
    if any(results.values()):
        raise typer.Exit(1)


@app.command("apply")
def apply_file(
    file: FileArg,
    tenant: TenantOpt,
    effective_from: Annotated[
        datetime | None,
        typer.Option("--effective-from", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"],
                     help="When the version comes into force (default: now), e.g. "
                          "2026-01-01T00:00:00+0000."),
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply a definition to the tenant as a new version of its program."""
    document = load(file)
    problems = validate(document)
    if problems:
        console.print(_problems_table(problems, f"{file}: {len(problems)} problem(s)"))
        raise typer.Exit(1)
    if effective_from is not None and effective_from.tzinfo is None:
        effective_from = effective_from.replace(tzinfo=datetime.now().astimezone().tzinfo)
    with open_database(database_url) as db, db.transaction() as session:
        tenants.get_tenant(session, tenant)
        version = service.apply(session, tenant, document, actor="cli",
                                effective_from=effective_from)
        out = {"program_id": version.program_id, "version": version.number,
               "effective_from": version.effective_from.isoformat(),
               "checksum": version.checksum}
    if as_json:
        typer.echo(json.dumps(out))
    else:
        console.print(f"applied [bold]{document['program']['code']}[/] as version "
                      f"{out['version']} (program {out['program_id']}, in force from "
                      f"{out['effective_from']})")


def _render(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@app.command("export")
def export(
    tenant: TenantOpt,
    program: Annotated[str, typer.Option("--program", help="The program's code.")],
    version: Annotated[int | None, typer.Option("--version", min=1,
                                                help="Version number (default: latest).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    database_url: DatabaseUrl = None,
) -> None:
    """Print a program's definition (latest or a given version)."""
    if fmt not in ("yaml", "json"):
        fail("--format must be yaml or json")
    with open_database(database_url) as db, db.read() as session:
        found = tenants.program_by_code(session, tenant, program)
        document = service.export(session, tenant, found.id, version).document
    typer.echo(_render(document, fmt), nl=False)


@app.command("diff")
def diff_file(
    file: FileArg,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant id.")] = None,
    against: Annotated[str | None, typer.Option(
        "--against", help="A version number, or another definition file (default: the version "
                          "in force).")] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Show what applying FILE would change. Exit 0 in any case."""
    draft = load(file)
    if against is not None and not against.isdigit():
        base_doc = load(Path(against))
        label = against
    else:
        if tenant is None:
            fail("--tenant is needed to compare with a stored version")
        code = draft.get("program", {}).get("code") if isinstance(draft, dict) else None
        if not isinstance(code, str):
            fail(f"{file}: program.code is missing")
        with open_database(database_url) as db, db.read() as session:
            program = tenants.program_by_code(session, tenant, code)
            if against is None:
                base, _ = service.diff_draft(session, tenant, program.id, draft)
            else:
                base = service.export(session, tenant, program.id, int(against))
            base_doc, label = base.document, f"version {base.number}"
    changes = diff(base_doc, draft)
    if as_json:
        typer.echo(json.dumps({"against": label, "changes": [c.to_dict() for c in changes]},
                              default=str))
        return
    console.print(f"[bold]{label}[/] → [bold]{file}[/]")
    for line in render(changes).splitlines():
        style = {"+": "green", "-": "red", "~": "yellow"}.get(line[:1], "")
        console.print(line, style=style or None, markup=False, highlight=False)
