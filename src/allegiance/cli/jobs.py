"""``allegiance jobs``: list and run the batch jobs."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from allegiance import jobs
from allegiance.kit import priority, statistics
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, fail, open_database

app = typer.Typer(help="Batch jobs (expiry…): run them from cron or a scheduler.",
                  no_args_is_help=True)


@app.command("list")
def list_jobs() -> None:
    """List the jobs that can be run."""
    table = Table("job", "what it does")
    for job in sorted(jobs.JOBS.values(), key=lambda j: j.name):
        table.add_row(job.name, job.description)
    console.print(table)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The job's name (see `allegiance jobs list`).")],
    batch: Annotated[int, typer.Option(min=1, help="Rows per batch (one transaction each).")] = 1000,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a job to completion in batches; safe to interrupt and run again."""
    try:
        job = jobs.get(name)
    except KeyError as exc:
        fail(str(exc.args[0]))
    priority.background()  # batch work: the API's requests go first on a shared machine
    with open_database(database_url) as db:
        statistics.refresh(db.engine)  # SQLite: plans that fit the data's size (see the module)
        if as_json:
            summary = job.run(db, batch, lambda _step, _count: None)
        else:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed}"),
                TimeElapsedColumn(), console=console, transient=True,
            ) as bar:
                tasks: dict[str, TaskID] = {}

                def progress(step: str, count: int) -> None:
                    if step not in tasks:
                        tasks[step] = bar.add_task(f"{job.name}: {step}", total=None)
                    bar.advance(tasks[step], count)

                summary = job.run(db, batch, progress)
    if as_json:
        typer.echo(json.dumps({"job": name, **summary}))
        return
    table = Table("figure", "total", title=f"job {name} finished")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)
