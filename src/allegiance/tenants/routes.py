"""HTTP routes of the caller's tenant, its programs, units and API keys.

Reads need the ``read`` scope, writes the ``admin`` scope; API keys are admin-only. Creating a
tenant is an operator action (CLI), not an HTTP route. Every admin write leaves an audit row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from allegiance import audit, tenants
from allegiance.kit import clock
from allegiance.kit.errors import Forbidden, ValidationFailed
from allegiance.kit.pagination import MAX_LIMIT, check_limit, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need
from allegiance.tenants.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyPage,
    ApiKeyRead,
    ApiKeyRotate,
    ProgramCreate,
    ProgramPage,
    ProgramRead,
    ProgramUpdate,
    TenantRead,
    UnitCreate,
    UnitPage,
    UnitRead,
    UnitUpdate,
)

router = APIRouter(tags=["tenants"])

T = TypeVar("T")
LimitQuery = Query(50, ge=1, le=MAX_LIMIT, description="page size")
CursorQuery = Query(None, max_length=200, description="next_cursor of the previous page")


def _slice(rows: Sequence[T], key: Callable[[T], str], limit: int,
           cursor: str | None) -> tuple[list[T], str | None]:
    """A page of ``rows`` (sorted by ``key``) after the cursor's key."""
    check_limit(limit)
    after = decode_cursor(cursor)
    kept = [r for r in rows if after is None or key(r) > after]
    if len(kept) > limit:
        return kept[:limit], encode_cursor(key(kept[limit - 1]))
    return kept, None


def _changes(body: BaseModel, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH body sets; ``null`` only where it means something."""
    data = body.model_dump(exclude_unset=True)
    for name, value in data.items():
        if value is None and name not in nullable:
            raise ValidationFailed(f"{name} cannot be null", field=name)
    if not data:
        raise ValidationFailed("the body changes nothing", field=None)
    return data


def _record(session: Session, ctx: Ctx, action: str, object_type: str, object_id: str,
            before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    audit.record(session, ctx.tenant_id, actor=ctx.actor, action=action,
                 object_type=object_type, object_id=object_id, before=before, after=after)


def _program(session: Session, ctx: Ctx, program_id: str) -> tenants.Program:
    ctx.check_program(program_id)
    return tenants.get_program(session, ctx.tenant_id, program_id)


def _unit(session: Session, ctx: Ctx, unit_id: str) -> tenants.Unit:
    unit = tenants.get_unit(session, ctx.tenant_id, unit_id)
    ctx.check_program(unit.program_id)
    return unit


# ---------------------------------------------------------------------------------------------
# Tenant


@router.get("/tenant", response_model=TenantRead, summary="The caller's tenant")
def get_tenant(ctx: Ctx = Depends(need("read"))) -> TenantRead:
    with ctx.read() as session:
        return TenantRead.model_validate(tenants.get_tenant(session, ctx.tenant_id))


# ---------------------------------------------------------------------------------------------
# Programs


@router.post("/programs", status_code=201, response_model=ProgramRead, summary="Create a program")
def create_program(body: ProgramCreate, ctx: Ctx = Depends(need("admin"))) -> Response:
    if ctx.principal.program_ids:
        raise Forbidden("a key limited to some programs cannot create programs",
                        field="Authorization")

    def run(session: Session) -> ProgramRead:
        program = tenants.create_program(session, ctx.tenant_id, **body.model_dump())
        out = ProgramRead.model_validate(program)
        _record(session, ctx, "program.create", "program", program.id, None,
                out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs", response_model=ProgramPage, summary="List programs")
def list_programs(
    limit: int = LimitQuery, cursor: str | None = CursorQuery, ctx: Ctx = Depends(need("read"))
) -> ProgramPage:
    with ctx.read() as session:
        rows = [p for p in tenants.list_programs(session, ctx.tenant_id)
                if not ctx.principal.program_ids or p.id in ctx.principal.program_ids]
        items, next_cursor = _slice(rows, lambda p: p.id, limit, cursor)
        return ProgramPage(items=[ProgramRead.model_validate(p) for p in items],
                           next_cursor=next_cursor)


@router.get("/programs/{program_id}", response_model=ProgramRead, summary="One program")
def get_program(program_id: str, ctx: Ctx = Depends(need("read"))) -> ProgramRead:
    with ctx.read() as session:
        return ProgramRead.model_validate(_program(session, ctx, program_id))


@router.patch("/programs/{program_id}", response_model=ProgramRead, summary="Change a program")
def update_program(
    program_id: str, body: ProgramUpdate, ctx: Ctx = Depends(need("admin"))
) -> Response:
    changes = _changes(body, nullable=frozenset({"adjustment_approval_threshold"}))

    def run(session: Session) -> ProgramRead:
        program = _program(session, ctx, program_id)
        before = ProgramRead.model_validate(program).model_dump(mode="json")
        out = ProgramRead.model_validate(
            tenants.update_program(session, ctx.tenant_id, program_id, changes)
        )
        _record(session, ctx, "program.update", "program", program_id, before,
                out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 200)


# ---------------------------------------------------------------------------------------------
# Units


@router.post("/programs/{program_id}/units", status_code=201, response_model=UnitRead,
             summary="Create a unit (points or money) in a program")
def create_unit(program_id: str, body: UnitCreate, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> UnitRead:
        _program(session, ctx, program_id)
        data = body.model_dump()
        data["expiry_policy"] = body.expiry_policy.as_dict() if body.expiry_policy else None
        unit = tenants.create_unit(session, ctx.tenant_id, program_id, **data)
        out = UnitRead.model_validate(unit)
        _record(session, ctx, "unit.create", "unit", unit.id, None, out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/units", response_model=UnitPage,
            summary="List a program's units")
def list_units(
    program_id: str,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> UnitPage:
    with ctx.read() as session:
        _program(session, ctx, program_id)
        rows = tenants.list_units(session, ctx.tenant_id, program_id)
        items, next_cursor = _slice(rows, lambda u: u.id, limit, cursor)
        return UnitPage(items=[UnitRead.model_validate(u) for u in items],
                        next_cursor=next_cursor)


@router.get("/units/{unit_id}", response_model=UnitRead, summary="One unit")
def get_unit(unit_id: str, ctx: Ctx = Depends(need("read"))) -> UnitRead:
    with ctx.read() as session:
        return UnitRead.model_validate(_unit(session, ctx, unit_id))


@router.patch("/units/{unit_id}", response_model=UnitRead, summary="Change a unit")
def update_unit(unit_id: str, body: UnitUpdate, ctx: Ctx = Depends(need("admin"))) -> Response:
    changes = _changes(body)
    if body.expiry_policy is not None:
        changes["expiry_policy"] = body.expiry_policy.as_dict()

    def run(session: Session) -> UnitRead:
        before = UnitRead.model_validate(_unit(session, ctx, unit_id)).model_dump(mode="json")
        out = UnitRead.model_validate(
            tenants.update_unit(session, ctx.tenant_id, unit_id, changes)
        )
        _record(session, ctx, "unit.update", "unit", unit_id, before, out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 200)


# ---------------------------------------------------------------------------------------------
# API keys


@router.post("/api-keys", status_code=201, response_model=ApiKeyIssued,
             summary="Create an API key (the secret is returned once)")
def create_api_key(body: ApiKeyCreate, ctx: Ctx = Depends(need("admin"))) -> Response:
    if body.expires_at is not None and body.expires_at <= clock.now():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    limited = ctx.principal.program_ids
    if limited and (not body.program_ids or not set(body.program_ids) <= set(limited)):
        # A key limited to some programs cannot mint a key that reaches further.
        raise Forbidden("the new key may only reach this key's programs", field="program_ids")

    def run(session: Session) -> ApiKeyIssued:
        issued = tenants.create_api_key(
            session, ctx.tenant_id, name=body.name, scopes=list(body.scopes),
            program_ids=list(body.program_ids), expires_at=body.expires_at,
        )
        read = ApiKeyRead.model_validate(issued.key)
        _record(session, ctx, "api_key.create", "api_key", issued.key.id, None,
                read.model_dump(mode="json"))
        return ApiKeyIssued(**read.model_dump(), secret=issued.secret)

    return ctx.write(body, run, 201)


@router.get("/api-keys", response_model=ApiKeyPage, summary="List API keys (never secrets)")
def list_api_keys(
    limit: int = LimitQuery, cursor: str | None = CursorQuery, ctx: Ctx = Depends(need("admin"))
) -> ApiKeyPage:
    with ctx.read() as session:
        rows = tenants.list_api_keys(session, ctx.tenant_id)
        items, next_cursor = _slice(rows, lambda k: k.id, limit, cursor)
        return ApiKeyPage(items=[ApiKeyRead.model_validate(k) for k in items],
                          next_cursor=next_cursor)


def _check_reach(session: Session, ctx: Ctx, key_id: str) -> None:
    """A key limited to some programs may only manage keys that reach no further."""
    limited = ctx.principal.program_ids
    if limited:
        keys = {k.id: k for k in tenants.list_api_keys(session, ctx.tenant_id)}
        target = keys.get(key_id)
        if target is not None and not (
            target.program_ids and set(target.program_ids) <= set(limited)
        ):
            raise Forbidden("this key may not manage a key that reaches further",
                            field="key_id")


@router.post("/api-keys/{key_id}/rotate", response_model=ApiKeyIssued,
             summary="Rotate an API key's secret (the new secret is returned once)")
def rotate_api_key(key_id: str, body: ApiKeyRotate | None = None,
                   ctx: Ctx = Depends(need("admin"))) -> Response:
    grace = timedelta(seconds=body.grace_seconds if body is not None else 0)

    def run(session: Session) -> ApiKeyIssued:
        _check_reach(session, ctx, key_id)
        issued = tenants.rotate_api_key(session, ctx.tenant_id, key_id, grace)
        read = ApiKeyRead.model_validate(issued.key)
        _record(session, ctx, "api_key.rotate", "api_key", key_id, None,
                read.model_dump(mode="json"))
        return ApiKeyIssued(**read.model_dump(), secret=issued.secret)

    return ctx.write(body, run, 200)


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyRead, summary="Revoke an API key")
def revoke_api_key(key_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ApiKeyRead:
        _check_reach(session, ctx, key_id)
        out = ApiKeyRead.model_validate(tenants.revoke_api_key(session, ctx.tenant_id, key_id))
        _record(session, ctx, "api_key.revoke", "api_key", key_id, None,
                out.model_dump(mode="json"))
        return out

    return ctx.write(None, run, 200)
