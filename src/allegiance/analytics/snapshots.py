"""Stored reports: the admin pages show the last computed copy of a report at once, with the
time it was computed, instead of recomputing retention cohorts or a CLV fit on every view.

A page asks for ``latest``: the stored copy when it exists (computed on the spot the first
time), flagged *stale* when it is older than ``ALLEGIANCE_REPORT_MAX_AGE_SECONDS``; the page
then shows it and has it recomputed after the response (``refresh_later``), and offers a
"refresh now" button (``compute``). The ``reports`` job recomputes the pages' default
reports of every program, so a cron entry keeps them warm. The API and the CLI still compute
every report live.

A copy is keyed by the report kind and a hash of its parameters (the ``Options``), so a page
shown for other dates has its own copy. Values keep their types (decimals, dates) through
the stored JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance.analytics.common import Report, ReportInvalid
from allegiance.analytics.models import ReportSnapshot
from allegiance.analytics.reports import Options, run
from allegiance.kit import clock, priority
from allegiance.kit.db import Database, dialect_insert

# The reports the admin pages show with their default parameters (the job keeps these warm).
PAGE_REPORTS = ("kpis", "liability", "breakage", "forecast", "retention", "clv", "uplift", "nps")
# Members listed by the CLV page.
PAGE_MEMBERS = 25


def page_options(**values: Any) -> Options:
    """The parameters of a report shown by an admin page (its defaults unless given)."""
    return Options(limit=PAGE_MEMBERS, **values)


@dataclass(frozen=True)
class Stored:
    """A report as computed at ``computed_at`` (it took ``seconds``)."""

    report: Report
    computed_at: datetime
    seconds: float

    def age(self, now: datetime | None = None) -> float:
        """Seconds since it was computed."""
        return ((now or clock.now()) - self.computed_at).total_seconds()


# ---------------------------------------------------------------------------------------------
# Typed JSON: decimals, dates and datetimes come back as themselves.


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, text), = value.items()
            if tag == "$decimal":
                return Decimal(text)
            if tag == "$datetime":
                return datetime.fromisoformat(text)
            if tag == "$date":
                return date.fromisoformat(text)
        return {k: _decode(v) for k, v in value.items()}
    return value


def encode(report: Report) -> str:
    """The report as JSON text that ``decode`` turns back into an equal report."""
    return json.dumps(_encode(dataclasses.asdict(report)), separators=(",", ":"))


def decode(text: str) -> Report:
    return Report(**_decode(json.loads(text)))


def options_text(options: Options) -> str:
    """The parameters in a canonical form (what the copy is keyed by)."""
    return json.dumps(_encode(dataclasses.asdict(options)), sort_keys=True,
                      separators=(",", ":"))


def options_key(kind: str, options: Options) -> str:
    return hashlib.sha256(f"{kind}\n{options_text(options)}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading and writing copies


def load(session: Session, tenant_id: str, program_id: str, kind: str,
         options: Options) -> Stored | None:
    row = session.scalar(select(ReportSnapshot).where(
        ReportSnapshot.tenant_id == tenant_id, ReportSnapshot.program_id == program_id,
        ReportSnapshot.kind == kind, ReportSnapshot.options_key == options_key(kind, options)))
    if row is None:
        return None
    return Stored(decode(row.body), row.computed_at, row.seconds)


def save(session: Session, tenant_id: str, program_id: str, kind: str, options: Options,
         stored: Stored) -> None:
    """Keep ``stored`` as the program's copy (replacing an older one; a newer one wins)."""
    ins = dialect_insert(session)(ReportSnapshot).values(
        tenant_id=tenant_id, program_id=program_id, kind=kind,
        options_key=options_key(kind, options), options=options_text(options),
        body=encode(stored.report), seconds=stored.seconds, computed_at=stored.computed_at)
    session.execute(ins.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "kind", "options_key"],
        set_={"body": ins.excluded.body, "seconds": ins.excluded.seconds,
              "computed_at": ins.excluded.computed_at, "options": ins.excluded.options},
        where=ReportSnapshot.computed_at <= ins.excluded.computed_at))


def compute(db: Database, tenant_id: str, program_id: str, kind: str,
            options: Options) -> Stored:
    """Compute the report now (one read) and store it (one short write)."""
    at = clock.now()
    started = time.perf_counter()
    with db.read(tenant_id) as session:
        report = run(session, tenant_id, program_id, kind, options)
    stored = Stored(report, at, time.perf_counter() - started)
    with db.transaction(tenant_id) as session:
        save(session, tenant_id, program_id, kind, options, stored)
    return stored


def latest(db: Database, tenant_id: str, program_id: str, kind: str, options: Options,
           max_age: float) -> tuple[Stored, bool]:
    """The stored copy and whether it is older than ``max_age`` seconds; computed and stored
    first when there is none. ``ReportInvalid`` (bad parameters) propagates."""
    with db.read(tenant_id) as session:
        stored = load(session, tenant_id, program_id, kind, options)
    if stored is None:
        return compute(db, tenant_id, program_id, kind, options), False
    return stored, stored.age() > max_age


_refreshing: set[tuple[str, str, str, str]] = set()
_refreshing_lock = threading.Lock()


def refresh_later(db: Database, tenant_id: str, program_id: str, kind: str, options: Options,
                  schedule: Callable[[Callable[[], None]], None]) -> bool:
    """Hand ``schedule`` a task that recomputes the copy, unless one is already on its way in
    this process; True when a task was handed over."""
    key = (tenant_id, program_id, kind, options_key(kind, options))
    with _refreshing_lock:
        if key in _refreshing:
            return False
        _refreshing.add(key)

    def task() -> None:
        try:  # in the API's process: at background priority, in a thread of its own
            priority.run_lowered(lambda: compute(db, tenant_id, program_id, kind, options))
        finally:
            with _refreshing_lock:
                _refreshing.discard(key)

    try:
        schedule(task)
    except BaseException:
        with _refreshing_lock:
            _refreshing.discard(key)
        raise
    return True


def refresh_program(db: Database, tenant_id: str, program_id: str) -> tuple[int, int]:
    """Recompute the pages' default reports of one program: (stored, not computable)."""
    stored = invalid = 0
    for kind in PAGE_REPORTS:
        try:
            compute(db, tenant_id, program_id, kind, page_options())
            stored += 1
        except ReportInvalid:
            invalid += 1
    return stored, invalid
