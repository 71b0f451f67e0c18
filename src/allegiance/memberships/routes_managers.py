"""HTTP routes of account managers (assigning: admin) and custom requests: the account asks,
accepts, declines or withdraws (integration); its manager prices and fulfils (admin); reads:
read. Another tenant's ids read as not found."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance.kit.web import Ctx, need
from allegiance.memberships import managers
from allegiance.memberships.errors import NoAccountManager
from allegiance.memberships.schemas_managers import (
    ManagedList,
    ManagerAction,
    ManagerIn,
    ManagerRead,
    QuoteIn,
    ReasonIn,
    RequestCreate,
    RequestList,
    RequestRead,
)

router = APIRouter(tags=["account managers"])

Status = Literal["requested", "quoted", "accepted", "fulfilled", "declined", "cancelled"]


@router.put("/accounts/{account_id}/manager", response_model=ManagerRead,
            summary="Assign an operator user as the account's personal manager")
def assign(account_id: str, body: ManagerIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ManagerRead:
        return ManagerRead.model_validate(managers.assign_manager(
            session, ctx.tenant_id, account_id, body.operator_id, actor=ctx.actor))

    return ctx.write(body, run)


@router.get("/accounts/{account_id}/manager", response_model=ManagerRead,
            summary="The account's personal manager (404 without one)")
def manager(account_id: str, ctx: Ctx = Depends(need("read"))) -> ManagerRead:
    with ctx.read() as session:
        row = managers.manager_of(session, ctx.tenant_id, account_id)
        if row is None:
            raise NoAccountManager("the account has no personal manager",
                                            field="account_id")
        return ManagerRead.model_validate(row)


@router.get("/operators/{operator_id}/accounts", response_model=ManagedList,
            summary="The accounts an operator user manages")
def managed(operator_id: str, ctx: Ctx = Depends(need("read"))) -> ManagedList:
    with ctx.read() as session:
        return ManagedList(items=[ManagerRead.model_validate(r) for r in
                                  managers.accounts_of(session, ctx.tenant_id, operator_id)])


def _owned(session: Session, ctx: Ctx, request_id: str) -> None:
    ctx.check_program(managers.get_request(session, ctx.tenant_id, request_id).program_id)


@router.post("/programs/{program_id}/custom-requests", status_code=201,
             response_model=RequestRead,
             summary="Ask the account's manager for an item outside the catalogue")
def create(program_id: str, body: RequestCreate,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> RequestRead:
        return RequestRead.model_validate(managers.create_request(
            session, ctx.tenant_id, program_id, body.account_id, description=body.description,
            quantity=body.quantity, user_id=body.user_id, actor=ctx.actor))

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/custom-requests", response_model=RequestList,
            summary="Custom requests of a program (by account, manager or status)")
def list_requests(program_id: str, account_id: str | None = Query(None, max_length=40),
                  manager_id: str | None = Query(None, max_length=40),
                  status: Status | None = Query(None),
                  limit: int = Query(100, ge=1, le=1000),
                  ctx: Ctx = Depends(need("read"))) -> RequestList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = managers.list_requests(session, ctx.tenant_id, program_id, account_id=account_id,
                                      manager_id=manager_id, status=status, limit=limit)
        return RequestList(items=[RequestRead.model_validate(r) for r in rows])


@router.get("/custom-requests/{custom_request_id}", response_model=RequestRead,
            summary="Read a custom request")
def get_request(custom_request_id: str, ctx: Ctx = Depends(need("read"))) -> RequestRead:
    with ctx.read() as session:
        _owned(session, ctx, custom_request_id)
        return RequestRead.model_validate(
            managers.get_request(session, ctx.tenant_id, custom_request_id))


@router.post("/custom-requests/{custom_request_id}/quote", response_model=RequestRead,
             summary="The manager prices the request in a unit of the program")
def quote(custom_request_id: str, body: QuoteIn,
          ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> RequestRead:
        _owned(session, ctx, custom_request_id)
        return RequestRead.model_validate(managers.quote(
            session, ctx.tenant_id, custom_request_id, operator_id=body.operator_id,
            unit_id=body.unit_id, price=body.price, note=body.note,
            valid_days=body.valid_days, actor=ctx.actor))

    return ctx.write(body, run)


@router.post("/custom-requests/{custom_request_id}/accept", response_model=RequestRead,
             summary="The account accepts the quote (the price is held in its wallet)")
def accept(custom_request_id: str, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> RequestRead:
        _owned(session, ctx, custom_request_id)
        return RequestRead.model_validate(
            managers.accept(session, ctx.tenant_id, custom_request_id, actor=ctx.actor))

    return ctx.write(None, run)


@router.post("/custom-requests/{custom_request_id}/decline", response_model=RequestRead,
             summary="Decline the request or its quote")
def decline(custom_request_id: str, body: ReasonIn,
            ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> RequestRead:
        _owned(session, ctx, custom_request_id)
        return RequestRead.model_validate(managers.decline(
            session, ctx.tenant_id, custom_request_id, reason=body.reason, actor=ctx.actor))

    return ctx.write(body, run)


@router.post("/custom-requests/{custom_request_id}/fulfil", response_model=RequestRead,
             summary="The manager delivered the item (the held price is posted)")
def fulfil(custom_request_id: str, body: ManagerAction,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> RequestRead:
        _owned(session, ctx, custom_request_id)
        return RequestRead.model_validate(managers.fulfil(
            session, ctx.tenant_id, custom_request_id, operator_id=body.operator_id,
            actor=ctx.actor))

    return ctx.write(body, run)


@router.post("/custom-requests/{custom_request_id}/cancel", response_model=RequestRead,
             summary="Withdraw a request not yet fulfilled (a held price is given back)")
def cancel(custom_request_id: str, body: ReasonIn,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> RequestRead:
        _owned(session, ctx, custom_request_id)
        return RequestRead.model_validate(managers.cancel(
            session, ctx.tenant_id, custom_request_id, reason=body.reason, actor=ctx.actor))

    return ctx.write(body, run)
