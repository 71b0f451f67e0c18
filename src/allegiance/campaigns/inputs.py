"""Whether a program's segment inputs changed since its last full refresh.

Database triggers (migration ``0036_segmentinputs``) write a row to ``segment_input_change``
for each program and transaction that changes what a refresh reads: enrolments, enrolled
accounts' region, attributes and status, running RFM inputs, member counters. What else a
refresh depends on — the local day (when RFM scores are read), the definition version in
force, the RFM window, the segments and their conditions — goes into a fingerprint kept with
the last full refresh (``segment_refresh``).

A refresh first deletes the program's change rows (:func:`take_changes`, in its own
transaction, before it reads anything): every change they stand for committed before that
statement, so the reads after it see it; a change committed later leaves a row for the next
refresh. When it deleted none and the fingerprint is the one stored, the memberships stored
are what a full refresh would compute, and it writes none. The rows are keyed by transaction
on PostgreSQL, so concurrent writers of one program never wait on each other for them.

Writers that go around the triggers (a bulk load in PostgreSQL's replica mode) call
:func:`inputs_changed`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from allegiance import definitions, members, tenants
from allegiance.campaigns import domain, rfm
from allegiance.campaigns.models import RfmModel, Segment, SegmentInputChange, SegmentRefresh

TIME_FIELDS = frozenset({"member.enrolled_days"})  # change with the clock alone: never skipped


def begin(session: Session, tenant_id: str, program_id: str,
          nodes: Sequence[tuple[Segment, object]], used: Mapping[str, str],
          now: datetime) -> tuple[RfmModel | None, str | None, bool]:
    """A refresh's first step (``nodes``: the segments and their compiled conditions),
    before it reads anything: the RFM model (created when a
    segment reads scores) and its window slid to today (its own changes are then taken with
    the others), the fingerprint, the change rows taken; returns (model, fingerprint,
    whether nothing changed since the last full refresh)."""
    model = rfm.ensure_model(session, tenant_id, program_id) if domain.uses_rfm(used) \
        else rfm.get_model(session, tenant_id, program_id)
    day = rfm.today(tenants.get_program(session, tenant_id, program_id), now)
    if model is not None:
        rfm.slide_if_moved(session, tenant_id, program_id, model, day)
    print_ = fingerprint(session, tenant_id, program_id, (g for g, _ in nodes), used, model,
                         day, now)
    changed = take_changes(session, tenant_id, program_id)
    return model, print_, unchanged(session, tenant_id, program_id, changed, print_)


def fingerprint(session: Session, tenant_id: str, program_id: str, segments: Iterable[Segment],
                used: Mapping[str, str], model: RfmModel | None, day: int,
                at: datetime) -> str | None:
    """What a full refresh of the program computes from besides the logged inputs (None: it
    depends on the clock, and is never skipped)."""
    if used.keys() & TIME_FIELDS or (domain.uses_rfm(used) and model is None):
        return None
    version = definitions.version_at(session, tenant_id, program_id, at)
    reads_rfm = model is not None or domain.uses_rfm(used)
    document = {
        "day": day if reads_rfm else None,
        "version": None if version is None else [version.number, version.checksum,
                                                 version.effective_from.isoformat()],
        "window": None if model is None else model.window_days,
        "segments": sorted([s.id, s.code, s.condition] for s in segments),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def take_changes(session: Session, tenant_id: str, program_id: str) -> bool:
    """Delete the program's change rows; whether there were any."""
    done = session.execute(delete(SegmentInputChange).where(
        SegmentInputChange.tenant_id == tenant_id, SegmentInputChange.program_id == program_id
    ).execution_options(synchronize_session=False))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def unchanged(session: Session, tenant_id: str, program_id: str, changed: bool,
              print_: str | None) -> bool:
    """Whether the last full refresh's memberships stand: no change row and the same
    fingerprint."""
    if changed or print_ is None:
        return False
    stored = session.scalar(select(SegmentRefresh.fingerprint).where(
        SegmentRefresh.tenant_id == tenant_id, SegmentRefresh.program_id == program_id))
    return stored == print_


def remember(session: Session, tenant_id: str, program_id: str, print_: str | None,
             at: datetime) -> None:
    """Keep the fingerprint of the full refresh just done (none: the next one is full too)."""
    row = session.get(SegmentRefresh, (tenant_id, program_id))
    if print_ is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(SegmentRefresh(tenant_id=tenant_id, program_id=program_id,
                                   fingerprint=print_, refreshed_at=at))
    else:
        row.fingerprint = print_
        row.refreshed_at = at
    session.flush()


def inputs_changed(session: Session, tenant_id: str, program_id: str | None = None) -> None:
    """Mark the program's (None: every program of the tenant's) segment inputs changed in the
    caller's transaction, for writes the triggers do not see: the next refresh is full."""
    if program_id is None:
        programs = set(session.scalars(select(members.Enrolment.program_id).where(
            members.Enrolment.tenant_id == tenant_id).distinct()))
        programs |= set(session.scalars(select(Segment.program_id).where(
            Segment.tenant_id == tenant_id)))
    else:
        programs = {program_id}
    sql = "INSERT INTO segment_input_change (tenant_id, program_id, tx) " + (
        "VALUES (:t, :p, CAST(CAST(pg_current_xact_id() AS text) AS bigint)) "
        "ON CONFLICT DO NOTHING" if session.get_bind().dialect.name == "postgresql"
        else "VALUES (:t, :p, 0) ON CONFLICT DO NOTHING")
    for program in sorted(programs):
        session.execute(text(sql), {"t": tenant_id, "p": program})


def stand(session: Session, segments: list[Segment], model: RfmModel | None,
          now: datetime) -> dict[str, int]:
    """A refresh with nothing changed since the last full one: every membership, count,
    breakpoint and distribution stands; only the refresh times move."""
    for segment in segments:
        segment.refreshed_at = segment.updated_at = now
    if model is not None:
        model.computed_at = model.updated_at = now
    session.flush()
    return {"segments": len(segments), "entered": 0, "left": 0}
