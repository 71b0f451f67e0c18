"""HTTP routes of programs as code: validate, apply (a new version), export, versions, diff.

Every route needs the ``admin`` scope; apply leaves an audit row (written by the service).
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Body, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.definitions import service, versions
from allegiance.definitions.diff import render
from allegiance.definitions.schemas import (
    ChangeRead,
    DefinitionApply,
    DefinitionRead,
    DiffRead,
    ProblemRead,
    ValidationRead,
    VersionPage,
    VersionRead,
)
from allegiance.definitions.validation import normalise, validate
from allegiance.kit.errors import Forbidden, NotFound, ValidationFailed
from allegiance.kit.pagination import MAX_LIMIT, check_limit, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["definitions"])

Document = Body(..., description="A program definition document (see docs/program-definitions.md).")


def _version_read(version: versions.Version) -> VersionRead:
    return VersionRead(program_id=version.program_id, version=version.number,
                       effective_from=version.effective_from, checksum=version.checksum)


@router.post("/definitions/validate", response_model=ValidationRead,
             summary="Check a program definition; every problem with its path")
def validate_definition(document: Any = Document,
                        ctx: Ctx = Depends(need("admin"))) -> ValidationRead:
    problems = validate(normalise(document))
    return ValidationRead(valid=not problems,
                          problems=[ProblemRead(**p.to_dict()) for p in problems])


@router.post("/definitions/apply", status_code=201, response_model=VersionRead,
             summary="Apply a program definition as a new version")
def apply_definition(body: DefinitionApply, ctx: Ctx = Depends(need("admin"))) -> Response:
    section = body.document.get("program")
    code = section.get("code") if isinstance(section, dict) else None

    def run(session: Session) -> VersionRead:
        if isinstance(code, str):
            try:
                ctx.check_program(tenants.program_by_code(session, ctx.tenant_id, code).id)
            except NotFound:
                if ctx.principal.program_ids:
                    raise Forbidden("this API key is limited to some programs and may not "
                                    "create one", field="document.program.code") from None
        version = service.apply(session, ctx.tenant_id, body.document, actor=ctx.actor,
                                effective_from=body.effective_from)
        return _version_read(version)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/definition", response_model=DefinitionRead,
            responses={200: {"content": {"application/yaml": {}}}},
            summary="Export a program's definition (latest or a given version)")
def export_definition(
    program_id: str,
    version: int | None = Query(None, ge=1, description="version number (default: latest)"),
    format: str = Query("json", pattern="^(json|yaml)$"),
    ctx: Ctx = Depends(need("admin")),
) -> Any:
    ctx.check_program(program_id)
    with ctx.read() as session:
        found = service.export(session, ctx.tenant_id, program_id, version)
    if format == "yaml":
        return Response(yaml.safe_dump(found.document, sort_keys=False, allow_unicode=True),
                        media_type="application/yaml")
    return DefinitionRead(program_id=found.program_id, version=found.number,
                          effective_from=found.effective_from, checksum=found.checksum,
                          document=found.document)


@router.get("/programs/{program_id}/versions", response_model=VersionPage,
            summary="The versions of a program's definition, oldest first")
def list_definition_versions(
    program_id: str,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    ctx: Ctx = Depends(need("admin")),
) -> VersionPage:
    ctx.check_program(program_id)
    check_limit(limit)
    after = decode_cursor(cursor)
    if after is not None and not after.isdigit():
        raise ValidationFailed("cursor is not valid", field="cursor")
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)
        rows = [r for r in versions.list_versions(session, ctx.tenant_id, program_id)
                if after is None or r.version > int(after)]
        items = [VersionRead.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor(str(items[-1].version)) if len(rows) > limit else None
    return VersionPage(items=items, next_cursor=next_cursor)


@router.post("/programs/{program_id}/definition/diff", response_model=DiffRead,
             summary="Diff a draft definition against the version in force (or a given one)")
def diff_definition(
    program_id: str,
    document: Any = Document,
    against: int | None = Query(None, ge=1, description="version to compare with"),
    ctx: Ctx = Depends(need("admin")),
) -> DiffRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        base, changes = service.diff_draft(session, ctx.tenant_id, program_id, document,
                                           against=against)
    return DiffRead(program_id=program_id, against_version=base.number,
                    changes=[ChangeRead(**c.to_dict()) for c in changes], text=render(changes))
