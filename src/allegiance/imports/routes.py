"""HTTP routes of bulk imports: saved column mappings, file uploads that start an import job,
the job's status and progress, and its error report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from allegiance.imports import domain, jobs, mappings, reader
from allegiance.imports.errors import InvalidUpload, NoErrorReport
from allegiance.imports.models import ImportJob
from allegiance.imports.schemas import JobPage, JobRead, MappingIn, MappingList, MappingRead
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.settings import get_settings
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["imports"])
CHUNK = 1024 * 1024


def _job(row: ImportJob) -> JobRead:
    out = JobRead.model_validate(row)
    out.progress = (min(1.0, row.rows_done / row.rows_total) if row.rows_total
                    else (1.0 if row.status == "done" else None))
    out.has_error_report = bool(row.errors_path) and Path(str(row.errors_path)).exists()
    return out


@router.put("/programs/{program_id}/import-mappings/{source}/{kind}",
            response_model=MappingRead, summary="Save the column mapping of a source's files")
def save_mapping(program_id: str, source: str, kind: str, body: MappingIn,
                 ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> MappingRead:
        row = mappings.save_mapping(session, ctx.tenant_id, program_id, source, kind,
                                    body.mapping, actor=ctx.actor)
        return MappingRead.model_validate(row)

    return ctx.write(body, run)


@router.get("/programs/{program_id}/import-mappings", response_model=MappingList,
            summary="List the saved column mappings")
def list_mappings(program_id: str, ctx: Ctx = Depends(need("read"))) -> MappingList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = mappings.list_mappings(session, ctx.tenant_id, program_id)
        return MappingList(items=[MappingRead.model_validate(r) for r in rows])


@router.get("/programs/{program_id}/import-mappings/{source}/{kind}",
            response_model=MappingRead, summary="Read a saved column mapping")
def get_mapping(program_id: str, source: str, kind: str,
                ctx: Ctx = Depends(need("read"))) -> MappingRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        row = mappings.get_mapping(session, ctx.tenant_id, program_id, source, kind)
        return MappingRead.model_validate(row)


@router.delete("/programs/{program_id}/import-mappings/{source}/{kind}", status_code=204,
               summary="Delete a saved column mapping")
def delete_mapping(program_id: str, source: str, kind: str,
                   ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> None:
        mappings.delete_mapping(session, ctx.tenant_id, program_id, source, kind,
                                actor=ctx.actor)

    ctx.write(None, run)
    return Response(status_code=204)


def _store(upload: UploadFile, target: Path) -> int:
    """Copy the upload to ``target`` in chunks; its size (refused past the limit)."""
    limit = get_settings().import_max_bytes
    size = 0
    with target.open("wb") as out:
        while True:
            chunk = upload.file.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                out.close()
                target.unlink(missing_ok=True)
                raise InvalidUpload(f"the file is larger than {limit} bytes", field="file")
            out.write(chunk)
    return size


@router.post("/programs/{program_id}/imports", status_code=202, response_model=JobRead,
             summary="Upload a file (CSV, XLSX, Parquet) and start its import")
def upload(program_id: str, file: UploadFile = File(...),
           kind: str = Form(..., max_length=16),
           source: str = Form(..., min_length=1, max_length=120),
           batch: int = Form(1000, ge=1, le=100_000),
           mapping: str | None = Form(None, max_length=100_000,
                                      description="a JSON column mapping; default: the "
                                                  "mapping saved for this source and kind"),
           ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)
    if kind not in domain.KINDS:
        raise domain.MappingInvalid(f"kind must be one of {', '.join(domain.KINDS)}",
                                    field="kind")
    name = Path(file.filename or "upload").name
    reader.file_format(Path(name))  # a type the imports read, before anything is stored
    data: Any = None
    if mapping is not None:
        try:
            data = json.loads(mapping)
        except ValueError:
            raise InvalidUpload("mapping must be JSON", field="mapping") from None
        domain.mapping_from(data, kind)
    job_id = jobs.new_job_id()
    target = jobs.upload_dir() / f"{job_id}{reader.stored_suffix(Path(name))}"
    size = _store(file, target)
    try:
        reader.open_source(target)  # a file that cannot be read is refused now
    except domain.MappingInvalid:
        target.unlink(missing_ok=True)
        raise

    def run(session: Session) -> JobRead:
        row = jobs.create_job(session, ctx.tenant_id, program_id, job_id=job_id, kind=kind,
                              source=source, file_name=name, path=target, size=size,
                              mapping=data, batch=batch, actor=ctx.actor)
        return _job(row)

    try:
        response = ctx.write({"kind": kind, "source": source, "batch": batch,
                              "mapping": mapping, "file": name, "size": size}, run, 202)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    with ctx.read() as session:
        stored = session.get(ImportJob, (ctx.tenant_id, job_id)) is not None
    if not stored:  # an Idempotency-Key replay answered with the first upload's job
        target.unlink(missing_ok=True)
    elif get_settings().import_worker == "thread":
        jobs.worker.wake(ctx.db)
    return response


@router.get("/imports/{job_id}", response_model=JobRead,
            summary="An import job's status and progress")
def get_job(job_id: str, ctx: Ctx = Depends(need("read"))) -> JobRead:
    with ctx.read() as session:
        row = jobs.get_job(session, ctx.tenant_id, job_id)
        ctx.check_program(row.program_id)
        return _job(row)


@router.get("/programs/{program_id}/imports", response_model=JobPage,
            summary="List a program's import jobs, newest first")
def list_jobs(program_id: str, limit: int = Query(50, ge=1, le=MAX_LIMIT),
              cursor: str | None = Query(None, max_length=200),
              ctx: Ctx = Depends(need("read"))) -> JobPage:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = jobs.list_jobs(session, ctx.tenant_id, program_id, limit=limit,
                              after=decode_cursor(cursor))
        items = [_job(r) for r in rows[:limit]]
    return JobPage(items=items,
                   next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/imports/{job_id}/errors", response_class=FileResponse,
            summary="Download the job's error report (CSV: row, column, value, reason)")
def error_report(job_id: str, ctx: Ctx = Depends(need("admin"))) -> FileResponse:
    with ctx.read() as session:
        row = jobs.get_job(session, ctx.tenant_id, job_id)
        ctx.check_program(row.program_id)
        path = row.errors_path
    if not path or not Path(path).exists():
        raise NoErrorReport("this import has no error report (no row was rejected, or it "
                            "has not finished)", field="job_id")
    return FileResponse(path, media_type="text/csv",
                        filename=f"{job_id}.errors.csv")

