"""Admin: bulk imports (``allegiance.imports``). Upload a CSV, XLSX or Parquet file to start
an import job — the same job the API's ``POST /v1/programs/{id}/imports`` starts — watch its
progress (the job's card polls itself with htmx while it runs) and download the per-row
error report.

The column mapping is a form (:mod:`allegiance.web.import_form`): once a file is chosen, the
page reads its header (``POST /admin/imports/columns``; ``static/imports.js`` sends only the
first 64 KiB of a CSV) and offers, for each field of the kind, a select of the file's
columns, and the amount's decimals; the raw JSON mapping stays as an advanced textarea that
wins when filled."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.imports import domain, jobs, mappings, reader
from allegiance.imports.models import ImportJob
from allegiance.kit.errors import AllegianceError, NotFound, ValidationFailed
from allegiance.kit.settings import get_settings
from allegiance.web import import_form
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 30
CHUNK = 1024 * 1024


def progress(job: ImportJob) -> dict[str, Any]:
    """What the job's card shows: share done (0-100), running or not, an error report."""
    share = (min(100, job.rows_done * 100 // job.rows_total) if job.rows_total
             else (100 if job.status == "done" else 0))
    report = bool(job.errors_path) and Path(str(job.errors_path)).exists()
    return {"job": job, "share": share, "live": job.status in ("queued", "running"),
            "report": report}


@router.get("/imports")
def import_page(request: Request, ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    with reading(ctx.db) as s:
        rows = jobs.list_jobs(s, ctx.tenant_id, program.id, limit=PAGE)[:PAGE]
        saved = mappings.list_mappings(s, ctx.tenant_id, program.id)
    return render(request, "admin/imports.html", {
        "ctx": ctx, "cards": [progress(j) for j in rows], "kinds": domain.KINDS,
        "saved": saved, "formats": reader.FORMATS,
        "fields_json": json.dumps(import_form.kinds_for_page()),
        "saved_json": json.dumps({f"{m.source}/{m.kind}": m.mapping for m in saved}),
        "default_decimals": import_form.DEFAULT_DECIMALS})


def _job_of(ctx: Admin, s: Session, job_id: str) -> ImportJob:
    job = jobs.get_job(s, ctx.tenant_id, job_id)
    if ctx.program is None or job.program_id != ctx.program.id:
        raise NotFound(f"import job {job_id} not found", field="job_id")
    return job


@router.get("/imports/{job_id}/progress")
def job_card(request: Request, job_id: str, ctx: Admin = Depends(admin("view"))) -> Response:
    """The job's card alone (htmx swaps it in place every second while the job runs)."""
    with reading(ctx.db) as s:
        job = _job_of(ctx, s, job_id)
    return render(request, "admin/_import_job.html", {"ctx": ctx, **progress(job)})


@router.get("/imports/{job_id}/errors")
def error_report(job_id: str, ctx: Admin = Depends(admin("imports"))) -> Response:
    with reading(ctx.db) as s:
        job = _job_of(ctx, s, job_id)
    if not job.errors_path or not Path(job.errors_path).exists():
        raise NotFound("this import has no error report (no row was rejected, or it has "
                       "not finished)", field="job_id")
    return FileResponse(job.errors_path, media_type="text/csv",
                        filename=f"{job_id}.errors.csv")


def _store(upload: UploadFile, target: Path) -> int:
    limit = get_settings().import_max_bytes
    size = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise ValidationFailed(f"the file is larger than {limit} bytes", field="file")
            out.write(chunk)
    return size


@router.post("/imports/columns")
def file_columns(file: UploadFile = File(...),
                 ctx: Admin = Depends(admin_form("imports"))) -> Response:
    """The header of a chosen file, for the mapping form: ``{"columns": [...]}`` (or
    ``{"error", "field"}`` with 422). The file is read and deleted at once."""
    ctx.need_program()
    name = Path(file.filename or "upload").name
    target: Path | None = None
    try:
        reader.file_format(Path(name))  # a type the imports read
        target = jobs.upload_dir() / f"columns-{uuid.uuid4().hex}{Path(name).suffix.lower()}"
        _store(file, target)
        headers = reader.open_source(target).headers  # .tsv: tab-separated
    except AllegianceError as exc:
        return JSONResponse({"error": import_form.named(exc), "field": exc.field},
                            status_code=422)
    finally:
        if target is not None:
            target.unlink(missing_ok=True)
    return JSONResponse({"columns": [h for h in headers if h]})


@router.post("/imports")
def upload(file: UploadFile = File(...), kind: str = Form("", max_length=16),
           source: str = Form("", max_length=120), mapping: str = Form("", max_length=100_000),
           form: import_form.MappingForm = Depends(import_form.mapping_form),
           ctx: Admin = Depends(admin_form("imports"))) -> RedirectResponse:
    """Store the file, check it can be read and that the mapping fits its columns, and queue
    its job (nothing is kept on error). The mapping is the raw JSON when given, else the
    form's (over the source's saved mapping), else the saved mapping."""
    program = ctx.need_program()
    target: Path | None = None
    try:
        if kind not in domain.KINDS:
            raise ValidationFailed(f"choose what the file holds: {', '.join(domain.KINDS)}",
                                   field="kind")
        if not source.strip():
            raise ValidationFailed("name the file's source (for example erp)", field="source")
        name = Path(file.filename or "upload").name
        reader.file_format(Path(name))  # a type the imports read
        data: Any = None
        if mapping.strip():
            try:
                data = json.loads(mapping)
            except ValueError:
                raise ValidationFailed("the column mapping must be JSON", field="mapping") \
                    from None
            domain.mapping_from(data, kind)
        with reading(ctx.db) as s:
            saved = mappings.saved_mapping(s, ctx.tenant_id, program.id, source.strip(), kind)
        if data is None:
            data = import_form.mapping_of(form, kind, saved)
        job_id = jobs.new_job_id()
        target = jobs.upload_dir() / f"{job_id}{reader.stored_suffix(Path(name))}"
        size = _store(file, target)
        opened = reader.open_source(target)  # a file that cannot be read is refused now
        # and so is a mapping that does not fit its columns (not only when the job runs)
        domain.plan(kind, domain.mapping_from(saved if data is None else data, kind),
                    opened.headers)
        with ctx.db.transaction() as s:
            job = jobs.create_job(s, ctx.tenant_id, program.id, job_id=job_id, kind=kind,
                                  source=source.strip(), file_name=name, path=target,
                                  size=size, mapping=data, batch=1000, actor=ctx.actor)
            audit.record(s, ctx.tenant_id, actor=ctx.actor, action="import.uploaded",
                         object_type="import_job", object_id=job.id,
                         after={"kind": kind, "source": job.source, "file": name,
                                "size": size})
    except AllegianceError as exc:
        if target is not None:
            target.unlink(missing_ok=True)
        ctx.say("error", import_form.named(exc))
        return RedirectResponse("/admin/imports", status_code=303)
    if get_settings().import_worker == "thread":
        jobs.worker.wake(ctx.db)
    ctx.say("ok", f"{name} is queued for import as job {job_id}.")
    return RedirectResponse("/admin/imports", status_code=303)
