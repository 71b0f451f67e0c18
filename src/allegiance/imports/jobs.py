"""Import jobs: an uploaded file is stored under ``settings.import_dir`` with a job row
(``queued``); a worker — a thread of the API process, or ``allegiance jobs run imports`` —
claims it (``running``), imports it with :func:`service.run` reporting progress after every
batch, and ends it ``done`` (with the error report's path when rows were rejected) or
``failed``. A job whose worker died (no heartbeat for ``import_stale_seconds``) is claimed
again and re-run from the start: the rows already applied are replays, so every row ends up
applied exactly once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.imports import domain, mappings, service
from allegiance.imports.errors import ImportJobNotFound
from allegiance.imports.models import ImportJob
from allegiance.kit import clock, priority
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.kit.ids import new_id
from allegiance.kit.settings import get_settings

log = logging.getLogger(__name__)


def upload_dir() -> Path:
    path = Path(get_settings().import_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_job_id() -> str:
    return new_id("imp")


def create_job(session: Session, tenant_id: str, program_id: str, *, job_id: str, kind: str,
               source: str, file_name: str, path: Path, size: int,
               mapping: dict[str, Any] | None, batch: int, actor: str) -> ImportJob:
    """A queued job for a file already stored at ``path``. Without ``mapping``, the mapping
    saved for (program, source, kind) is used (a copy is kept on the job)."""
    tenants.get_program(session, tenant_id, program_id)
    if kind not in domain.KINDS:
        raise domain.MappingInvalid(f"kind must be one of {', '.join(domain.KINDS)}",
                                    field="kind")
    if mapping is None:
        mapping = mappings.saved_mapping(session, tenant_id, program_id, source, kind) or {}
    domain.mapping_from(mapping, kind)
    job = ImportJob(
        tenant_id=tenant_id, id=job_id, program_id=program_id, kind=kind, source=source,
        file_name=file_name[:255], path=str(path), size=size, mapping=mapping, batch=batch,
        status="queued", attempts=0, rows_total=None, rows_done=0, created=0, replayed=0,
        unmatched=0, rejected_events=0, rejected_rows=0, errors_path=None, error=None,
        created_by=actor[:200], created_at=clock.now(), started_at=None, heartbeat_at=None,
        finished_at=None,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, tenant_id: str, job_id: str) -> ImportJob:
    job = session.get(ImportJob, (tenant_id, job_id))
    if job is None:
        raise ImportJobNotFound(f"import job {job_id} not found", field="job_id")
    return job


def list_jobs(session: Session, tenant_id: str, program_id: str, *, limit: int,
              after: str | None = None) -> list[ImportJob]:
    tenants.get_program(session, tenant_id, program_id)  # another tenant's program: not found
    query = select(ImportJob).where(ImportJob.tenant_id == tenant_id,
                                    ImportJob.program_id == program_id)
    if after is not None:
        query = query.where(ImportJob.id < after)
    return list(session.scalars(query.order_by(ImportJob.id.desc()).limit(limit + 1)))


def claim_next(db: Database) -> tuple[str, str] | None:
    """Take the oldest queued job (or a running one whose worker went silent): (tenant, id).
    The status change is conditional, so two workers never take the same job."""
    now = clock.now()
    stale = now - timedelta(seconds=get_settings().import_stale_seconds)
    with db.transaction() as s:
        candidates = s.execute(
            select(ImportJob.tenant_id, ImportJob.id, ImportJob.status, ImportJob.heartbeat_at)
            .where(or_(ImportJob.status == "queued",
                       (ImportJob.status == "running") & (ImportJob.heartbeat_at < stale)))
            .order_by(ImportJob.created_at).limit(10)).all()
        for tenant_id, job_id, status, heartbeat in candidates:
            taken = s.execute(
                update(ImportJob)
                .where(ImportJob.tenant_id == tenant_id, ImportJob.id == job_id,
                       ImportJob.status == status,
                       ImportJob.heartbeat_at.is_(None) if heartbeat is None
                       else ImportJob.heartbeat_at == heartbeat)
                .values(status="running", attempts=ImportJob.attempts + 1, started_at=now,
                        heartbeat_at=now, error=None)
                .execution_options(synchronize_session=False))
            if getattr(taken, "rowcount", 0) == 1:
                return tenant_id, job_id
    return None


def _store_progress(db: Database, tenant_id: str, job_id: str, **values: Any) -> None:
    with db.transaction() as s:
        s.execute(update(ImportJob)
                  .where(ImportJob.tenant_id == tenant_id, ImportJob.id == job_id)
                  .values(heartbeat_at=clock.now(), **values)
                  .execution_options(synchronize_session=False))


def _counters(report: service.Report) -> dict[str, int]:
    return {"rows_done": report.rows, "created": report.created, "replayed": report.replayed,
            "unmatched": report.unmatched, "rejected_events": report.rejected_events,
            "rejected_rows": report.rejected_rows}


def run_job(db: Database, tenant_id: str, job_id: str) -> str:
    """Import a claimed job's file; its final status (done or failed)."""
    with db.read() as s:
        job = get_job(s, tenant_id, job_id)
        program_code = tenants.get_program(s, tenant_id, job.program_id).code
        kind, source, batch, path = job.kind, job.source, job.batch, Path(job.path)
        mapping_data = dict(job.mapping)
    errors_path = upload_dir() / f"{job_id}.errors.csv"
    try:
        report = service.run(
            db, tenant_id, program_code, kind, path,
            mapping=domain.mapping_from(mapping_data, kind), source=source, batch=batch,
            errors_path=errors_path, actor=f"import:{job_id}",
            on_start=lambda total: _store_progress(db, tenant_id, job_id, rows_total=total),
            on_report=lambda r: _store_progress(db, tenant_id, job_id, **_counters(r)),
        )
    except AllegianceError as exc:
        _store_progress(db, tenant_id, job_id, status="failed", error=str(exc)[:1000],
                        finished_at=clock.now())
        return "failed"
    except Exception as exc:  # the job must not stay "running" forever
        log.exception("import job %s failed", job_id)
        _store_progress(db, tenant_id, job_id, status="failed",
                        error=f"internal error: {type(exc).__name__}: {exc}"[:1000],
                        finished_at=clock.now())
        return "failed"
    _store_progress(db, tenant_id, job_id, status="done", finished_at=clock.now(),
                    errors_path=report.errors_file, **_counters(report))
    return "done"


def run_pending(db: Database, batch: int = 1000,
                progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Run every claimable job (the ``imports`` batch job); counts of jobs by outcome."""
    out = {"jobs_done": 0, "jobs_failed": 0}
    while True:
        claimed = claim_next(db)
        if claimed is None:
            return out
        status = run_job(db, *claimed)
        out[f"jobs_{status}"] += 1
        if progress is not None:
            progress(status, 1)


class Worker:
    """At most one import thread per process: :meth:`wake` starts it, or tells the running
    one to look for new jobs before it stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted = False
        self._running = False

    def wake(self, db: Database) -> None:
        with self._lock:
            self._wanted = True
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, args=(db,), name="allegiance-imports",
                         daemon=True).start()

    def _loop(self, db: Database) -> None:
        priority.lower_this_thread()  # in the API's process: its requests go first
        while True:
            with self._lock:
                self._wanted = False
            try:
                run_pending(db)
            except Exception:  # keep the flag right; the next upload wakes a new thread
                log.exception("import worker stopped")
            with self._lock:
                if not self._wanted:
                    self._running = False
                    return


worker = Worker()
