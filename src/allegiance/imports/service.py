"""Run an import: read the file in chunks, validate and group its rows, and send each batch of
events through :func:`allegiance.events.ingest` — the API's own earning path (rules, limits,
budgets, tiers, ledger) — in one transaction per batch. Returns go through the events
service's return path, accounts, users and catalogue items through their services
(:mod:`allegiance.imports.records`).

Exactly once comes from the events' unique (program, source, external id): an event already
stored is a replay and adds nothing, so re-importing a file (or an overlapping one) adds
nothing, and an import killed at any point (its open batch rolls back) resumes by running it
again. One bad event never blocks the others: each is ingested under its own savepoint and its
rows go to the error report.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from allegiance import events, tenants
from allegiance.imports import domain, reader, records
from allegiance.kit.db import Database, retrying
from allegiance.kit.errors import AllegianceError

DEFAULT_SOURCE = "import"
DEFAULT_BATCH = 1000
_LINE_FIELD = re.compile(r"^lines\[(\d+)\]\.(\w+)$")
_LINE_COLUMNS = {"quantity": "line_quantity", "amount": "line_amount"}


@dataclass
class Report:
    """What an import did. ``created`` events are new; ``replayed`` were already stored."""

    kind: str
    rows: int = 0
    created: int = 0
    replayed: int = 0
    unmatched: int = 0
    rejected_events: int = 0
    rejected_rows: int = 0
    batches: int = 0
    checked: int = 0
    seconds: float = 0.0
    errors_file: str | None = None
    # purchases and activities: how many took the bulk path, how many the per-event service
    paths: events.BulkStats = field(default_factory=events.BulkStats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "rows": self.rows, "created": self.created,
            "replayed": self.replayed, "unmatched": self.unmatched,
            "rejected_events": self.rejected_events, "rejected_rows": self.rejected_rows,
            "batches": self.batches, "checked": self.checked,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None,
            "errors_file": self.errors_file,
            "bulk_events": self.paths.bulk, "per_event_events": self.paths.per_event,
        }


class ErrorReport:
    """The error report: a CSV of row, column, value, reason — created at the first error."""

    HEADER = ("row", "column", "value", "reason")

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None

    def write(self, errors: Iterable[domain.RowError]) -> None:
        for error in errors:
            self.count += 1
            if self.path is None:
                continue
            if self._writer is None:
                self._file = self.path.open("w", newline="", encoding="utf-8")
                self._writer = csv.writer(self._file)
                self._writer.writerow(self.HEADER)
            self._writer.writerow((error.row, error.column, error.value, error.reason))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def event_data(group: domain.Group, kind: str, source: str,
               account_source: str | None) -> events.EventData:
    """The :class:`events.EventData` of a valid group."""
    values = group.values
    external = values.get("account_external_id")
    lines = tuple(
        events.LineIn(line.sku, line.name, line.category, line.brand, line.labels,
                      line.quantity, line.unit_price, line.amount)
        for line in group.lines
    )
    return events.EventData(
        external_id=group.external_id,
        kind="purchase" if kind == "purchases" else "activity",
        source=source,
        activity_type=values.get("activity_type"),
        account_id=values.get("account_id"),
        member_number=values.get("member_number"),
        account_external_id=None if external is None else (account_source or "", external),
        reported_by="operator",
        user_id=values.get("user_id"),
        occurred_at=values.get("occurred_at"),
        currency=values.get("currency"),
        amount=values.get("amount"),
        quantity=values.get("quantity"),
        channel=values.get("channel"),
        attributes=dict(group.rows[0].attributes),
        lines=lines,
    )


def _failure(plan: domain.Plan, group: domain.Group, exc: AllegianceError) -> domain.RowError:
    """The row and column an ingest error points at."""
    name = exc.field or "external_id"
    row = group.first_row
    column = plan.fields.get(name, name)
    found = _LINE_FIELD.match(name)
    if found:
        with_lines = [r for r in group.rows if r.line is not None]
        index = int(found.group(1))
        if index < len(with_lines):
            row = with_lines[index].row
        field_name = _LINE_COLUMNS.get(found.group(2), found.group(2))
        column = plan.fields.get(field_name, field_name)
    elif name.startswith(domain.ATTRIBUTE_PREFIX):
        column = plan.attributes.get(name[len(domain.ATTRIBUTE_PREFIX):], name)
    value = group.values.get(name, group.rows[0].attributes.get(
        name[len(domain.ATTRIBUTE_PREFIX):]) if name.startswith(domain.ATTRIBUTE_PREFIX)
        else None)
    return domain.RowError(row, column, "" if value is None else str(value), exc.message)


@dataclass
class BatchResult:
    created: int = 0
    replayed: int = 0
    unmatched: int = 0
    errors: list[domain.RowError] = field(default_factory=list)
    rejected_events: int = 0


def apply_batch(session: Session, tenant_id: str, program_id: str, plan: domain.Plan,
                groups: list[domain.Group], *, source: str, actor: str,
                stats: events.BulkStats | None = None) -> BatchResult:
    """Ingest a batch of grouped rows in the caller's transaction; rejected groups and events
    the events service refuses become row errors. Purchases and activities go through
    :func:`allegiance.events.ingest_many` (columnar evaluation, set-based writes, the
    per-event service for what it does not cover); other kinds record by record, each under
    a savepoint."""
    out = BatchResult()
    valid: list[domain.Group] = []
    for group in groups:
        if group.errors:
            out.errors.extend(group.reject_rest())
            out.rejected_events += 1
        else:
            valid.append(group)
    if plan.kind in domain.EVENT_KINDS:
        datas = [event_data(g, plan.kind, source, plan.mapping.account_source) for g in valid]
        results = events.ingest_many(session, tenant_id, program_id, datas, actor=actor,
                                   stats=stats)
        for group, result in zip(valid, results, strict=True):
            if result.error is not None:
                _reject(out, plan, group, result.error)
            elif not result.created:
                out.replayed += 1
            else:
                out.created += 1
                out.unmatched += result.unmatched
        return out
    for group in valid:
        try:
            with session.begin_nested():
                created = records.apply_record(session, tenant_id, program_id, plan, group,
                                               source=source, actor=actor)
        except AllegianceError as exc:
            _reject(out, plan, group, exc)
            continue
        if created:
            out.created += 1
        else:
            out.replayed += 1
    return out


def _reject(out: BatchResult, plan: domain.Plan, group: domain.Group,
            exc: AllegianceError) -> None:
    group.errors.append(_failure(plan, group, exc))
    out.errors.extend(group.reject_rest())
    out.rejected_events += 1


Progress = Callable[[int], None]


def run(
    db: Database,
    tenant_id: str,
    program_code: str,
    kind: str,
    path: Path,
    *,
    mapping: domain.ColumnMapping | None = None,
    source: str | None = None,
    batch: int = DEFAULT_BATCH,
    errors_path: Path | None = None,
    actor: str = "import",
    on_start: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
    after_batch: Callable[[int], None] | None = None,
    check_only: bool = False,
    on_report: Callable[[Report], None] | None = None,
) -> Report:
    """Import ``path`` as ``kind`` (one of :data:`domain.KINDS`) into the program; one
    transaction per batch of ``batch`` rows. ``after_batch`` is called after each commit.
    ``check_only``: read and validate every row and write the error report, store nothing."""
    if batch < 1:
        raise domain.MappingInvalid("batch must be at least 1", field="batch")
    with db.read() as s:
        program_id = tenants.program_by_code_or_id(s, tenant_id, program_code).id
    opened = reader.open_source(path)
    plan = domain.plan(kind, mapping or domain.ColumnMapping(), opened.headers)
    report = Report(kind=kind, errors_file=None)
    errors = ErrorReport(errors_path)
    if on_start is not None:
        on_start(opened.rows)
    started = time.perf_counter()
    grouper = domain.Grouper(plan)
    typed = domain.typed_parser(plan) if opened.format == "parquet" else None
    try:
        chunks = opened.chunks(batch, plan.columns())
        pending: list[domain.Group] = []
        for chunk in chunks:
            for number, raw in chunk:
                parsed = (typed(number, raw) if typed is not None else None) \
                    or domain.parse_row(plan, number, raw)
                pending.extend(grouper.feed(number, domain.external_id_of(plan, raw), parsed))
            if check_only:
                _check(pending, report, errors)
            else:
                _commit(db, tenant_id, program_id, plan, pending, source, actor, report, errors)
            pending = []
            report.rows += len(chunk)
            report.rejected_rows = errors.count
            if on_progress is not None:
                on_progress(report.rows)
            if on_report is not None:
                on_report(report)
            if after_batch is not None:
                after_batch(report.batches)
        pending.extend(grouper.finish())
        if pending and check_only:
            _check(pending, report, errors)
        elif pending:
            _commit(db, tenant_id, program_id, plan, pending, source, actor, report, errors)
    finally:
        errors.close()
    report.seconds = time.perf_counter() - started
    report.rejected_rows = errors.count
    report.errors_file = str(errors_path) if errors_path is not None and errors.count else None
    return report


def _commit(db: Database, tenant_id: str, program_id: str, plan: domain.Plan,
            groups: list[domain.Group], source: str | None, actor: str, report: Report,
            errors: ErrorReport) -> None:
    if not groups:
        return
    marks = [len(group.errors) for group in groups]

    def attempt() -> BatchResult:
        for group, mark in zip(groups, marks, strict=True):
            del group.errors[mark:]  # what a rolled-back attempt found is found again
        with db.transaction() as s:
            return apply_batch(s, tenant_id, program_id, plan, groups,
                               source=source or DEFAULT_SOURCE, actor=actor, stats=report.paths)

    # A batch that loses a PostgreSQL deadlock (its members' locks against an API write's)
    # was rolled back whole: it runs again rather than ending the import half way.
    result = retrying(attempt)
    report.batches += 1
    report.created += result.created
    report.replayed += result.replayed
    report.unmatched += result.unmatched
    report.rejected_events += result.rejected_events
    errors.write(result.errors)


def _check(groups: list[domain.Group], report: Report, errors: ErrorReport) -> None:
    """Count the valid groups of a check-only run and report the invalid ones."""
    for group in groups:
        if group.errors:
            errors.write(group.reject_rest())
            report.rejected_events += 1
        else:
            report.checked += 1
