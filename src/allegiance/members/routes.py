"""HTTP routes of accounts, users, enrolments, invitations, merges and user transfers.

Scopes: reads need ``read``; creating accounts, users and enrolments, accepting invitations and
user transfers need ``integration`` (admin keys pass too); everything else needs ``admin``.
Another tenant's ids read as not found (every lookup filters by the caller's tenant).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import ledger, tenants
from allegiance.kit.pagination import MAX_LIMIT
from allegiance.kit.web import Ctx, need
from allegiance.members import enrolments, merge, service
from allegiance.members.models import Account, Enrolment
from allegiance.members.schemas import (
    AccountCreate,
    AccountPage,
    AccountRead,
    AccountUpdate,
    Approval,
    EnrolmentChangeRead,
    EnrolmentCreate,
    EnrolmentPage,
    EnrolmentRead,
    EnrolmentStatus,
    ExternalId,
    InvitationAccept,
    InvitationCreate,
    InvitationIssued,
    MergeRequest,
    Rejection,
    StatusChange,
    TransferCreate,
    TransferRead,
    UserCreate,
    UserRead,
    UserUpdate,
)

router = APIRouter(tags=["members"])

LimitQuery = Query(50, ge=1, le=MAX_LIMIT, description="page size")
CursorQuery = Query(None, max_length=200, description="next_cursor of the previous page")


def _accounts(session: Session, tenant_id: str, rows: list[Account]) -> list[AccountRead]:
    ids = service.external_ids_of(session, tenant_id, [a.id for a in rows])
    return [
        AccountRead.model_validate(a).model_copy(update={"external_ids": [
            ExternalId(source=src, external_id=ext) for src, ext in ids[a.id]]})
        for a in rows
    ]


def _account(session: Session, tenant_id: str, account: Account) -> AccountRead:
    return _accounts(session, tenant_id, [account])[0]


def _enrolment(session: Session, ctx: Ctx, enrolment_id: str) -> Enrolment:
    """The enrolment, if the caller's key may use its program."""
    enrolment = enrolments.get_enrolment(session, ctx.tenant_id, enrolment_id)
    ctx.check_program(enrolment.program_id)
    return enrolment


# ---------------------------------------------------------------------------------------------
# Accounts


@router.post("/accounts", status_code=201, response_model=AccountRead,
             summary="Create an account (member business)")
def create_account(body: AccountCreate, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(s: Session) -> AccountRead:
        account = service.create_account(
            s, ctx.tenant_id, name=body.name, parent_id=body.parent_id,
            member_number=body.member_number, region=body.region, email=body.email,
            tax_id=body.tax_id, attributes=body.attributes,
            external_ids=[(e.source, e.external_id) for e in body.external_ids],
            actor=ctx.actor)
        return _account(s, ctx.tenant_id, account)

    return ctx.write(body, run, 201)


@router.get("/accounts", response_model=AccountPage, summary="List or search accounts")
def list_accounts(
    q: str | None = Query(None, max_length=200,
                          description="part of the name, or a member number or e-mail"),
    parent_id: str | None = Query(None, max_length=40),
    status: str | None = Query(None, pattern="^(active|closed|merged|erased)$"),
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> AccountPage:
    with ctx.read() as s:
        page = service.list_accounts(s, ctx.tenant_id, parent_id=parent_id, q=q, status=status,
                                     limit=limit, cursor=cursor)
        return AccountPage(items=_accounts(s, ctx.tenant_id, page.items),
                           next_cursor=page.next_cursor)


@router.get("/accounts/{account_id}", response_model=AccountRead, summary="Get an account")
def get_account(account_id: str, ctx: Ctx = Depends(need("read"))) -> AccountRead:
    with ctx.read() as s:
        return _account(s, ctx.tenant_id, service.get_account(s, ctx.tenant_id, account_id))


@router.patch("/accounts/{account_id}", response_model=AccountRead,
              summary="Change an account or move it in the hierarchy")
def update_account(account_id: str, body: AccountUpdate,
                   ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(s: Session) -> AccountRead:
        account = service.update_account(s, ctx.tenant_id, account_id,
                                         body.model_dump(exclude_unset=True), ctx.actor)
        return _account(s, ctx.tenant_id, account)

    return ctx.write(body, run)


@router.get("/accounts/{account_id}/children", response_model=AccountPage,
            summary="The accounts directly below an account")
def list_children(account_id: str, limit: int = LimitQuery, cursor: str | None = CursorQuery,
                  ctx: Ctx = Depends(need("read"))) -> AccountPage:
    with ctx.read() as s:
        service.get_account(s, ctx.tenant_id, account_id)
        page = service.list_accounts(s, ctx.tenant_id, parent_id=account_id, limit=limit,
                                     cursor=cursor)
        return AccountPage(items=_accounts(s, ctx.tenant_id, page.items),
                           next_cursor=page.next_cursor)


@router.post("/accounts/{account_id}/merge", response_model=AccountRead,
             summary="Merge a duplicate account into another",
             description="Balances move to the other account's wallets through the ledger; "
                         "users, external ids, child accounts and enrolments follow.")
def merge_account(account_id: str, body: MergeRequest,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(s: Session) -> AccountRead:
        merged = merge.merge_accounts(s, ctx.tenant_id, source_id=account_id,
                                      target_id=body.into_account_id, actor=ctx.actor,
                                      reason=body.reason)
        return _account(s, ctx.tenant_id, merged)

    return ctx.write(body, run)


# ---------------------------------------------------------------------------------------------
# Users


@router.post("/accounts/{account_id}/users", status_code=201, response_model=UserRead,
             summary="Add a user to an account")
def add_user(account_id: str, body: UserCreate,
             ctx: Ctx = Depends(need("integration"))) -> Response:
    return ctx.write(body, lambda s: UserRead.model_validate(service.add_user(
        s, ctx.tenant_id, account_id, name=body.name, email=body.email, role=body.role,
        external_id=body.external_id, actor=ctx.actor)), 201)


@router.get("/accounts/{account_id}/users", response_model=list[UserRead],
            summary="The users of an account")
def list_users(account_id: str, ctx: Ctx = Depends(need("read"))) -> list[UserRead]:
    with ctx.read() as s:
        return [UserRead.model_validate(u)
                for u in service.list_users(s, ctx.tenant_id, account_id)]


@router.get("/users/{user_id}", response_model=UserRead, summary="Get a user")
def get_user(user_id: str, ctx: Ctx = Depends(need("read"))) -> UserRead:
    with ctx.read() as s:
        return UserRead.model_validate(service.get_user(s, ctx.tenant_id, user_id))


@router.patch("/users/{user_id}", response_model=UserRead, summary="Change a user")
def update_user(user_id: str, body: UserUpdate, ctx: Ctx = Depends(need("admin"))) -> Response:
    return ctx.write(body, lambda s: UserRead.model_validate(service.update_user(
        s, ctx.tenant_id, user_id, body.model_dump(exclude_unset=True), ctx.actor)))


@router.post("/users/{user_id}/transfers", status_code=201, response_model=TransferRead,
             summary="Transfer between wallets on behalf of a user",
             description="Allowed by the user's role: owners move within their account and "
                         "below and pool into the parent account; managers and reps pool user "
                         "wallets into their account; viewers cannot transfer.")
def transfer_as_user(user_id: str, body: TransferCreate,
                     ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(s: Session) -> TransferRead:
        result = merge.transfer_as_user(
            s, ctx.tenant_id, user_id=user_id, from_wallet_id=body.from_wallet_id,
            to_wallet_id=body.to_wallet_id, amount=body.amount, entry_key=body.entry_key)
        ctx.check_program(ledger.get_account(s, ctx.tenant_id, body.from_wallet_id).program_id)
        return TransferRead(entry_id=result.entry_id, seq=result.seq, created=result.created)

    return ctx.write(body, run, 201)


# ---------------------------------------------------------------------------------------------
# Enrolments


@router.post("/programs/{program_id}/enrolments", status_code=201, response_model=EnrolmentRead,
             summary="Enrol an account",
             description="Open and automatic programs activate at once; programs by "
                         "application record an application (status applied); programs by "
                         "invitation need an invitation_token.")
def enrol(program_id: str, body: EnrolmentCreate,
          ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)
    return ctx.write(body, lambda s: EnrolmentRead.model_validate(enrolments.enrol(
        s, ctx.tenant_id, program_id, body.account_id, actor=ctx.actor,
        application=body.application, invitation_token=body.invitation_token)), 201)


@router.get("/programs/{program_id}/enrolments", response_model=EnrolmentPage,
            summary="The enrolments of a program")
def list_enrolments(
    program_id: str,
    status: EnrolmentStatus | None = Query(None),
    account_id: str | None = Query(None, max_length=40),
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> EnrolmentPage:
    ctx.check_program(program_id)
    with ctx.read() as s:
        tenants.get_program(s, ctx.tenant_id, program_id)
        page = enrolments.list_enrolments(s, ctx.tenant_id, program_id=program_id,
                                          status=status, account_id=account_id, limit=limit,
                                          cursor=cursor)
        return EnrolmentPage(items=[EnrolmentRead.model_validate(e) for e in page.items],
                             next_cursor=page.next_cursor)


@router.get("/enrolments/{enrolment_id}", response_model=EnrolmentRead,
            summary="Get an enrolment")
def get_enrolment(enrolment_id: str, ctx: Ctx = Depends(need("read"))) -> EnrolmentRead:
    with ctx.read() as s:
        return EnrolmentRead.model_validate(_enrolment(s, ctx, enrolment_id))


@router.post("/enrolments/{enrolment_id}/status", response_model=EnrolmentRead,
             summary="Change an enrolment's status",
             description="applied → active | rejected; invited → active; "
                         "active → suspended | closed; suspended → active | closed.")
def change_status(enrolment_id: str, body: StatusChange,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(s: Session) -> EnrolmentRead:
        _enrolment(s, ctx, enrolment_id)
        return EnrolmentRead.model_validate(enrolments.change_enrolment_status(
            s, ctx.tenant_id, enrolment_id, body.to_status, actor=ctx.actor,
            reason=body.reason))

    return ctx.write(body, run)


@router.post("/enrolments/{enrolment_id}/approve", response_model=EnrolmentRead,
             summary="Approve an application")
def approve(enrolment_id: str, body: Approval | None = None,
            ctx: Ctx = Depends(need("admin"))) -> Response:
    reason = body.reason if body else None

    def run(s: Session) -> EnrolmentRead:
        _enrolment(s, ctx, enrolment_id)
        return EnrolmentRead.model_validate(enrolments.approve_application(
            s, ctx.tenant_id, enrolment_id, actor=ctx.actor, reason=reason))

    return ctx.write(body, run)


@router.post("/enrolments/{enrolment_id}/reject", response_model=EnrolmentRead,
             summary="Reject an application (a reason is required)")
def reject(enrolment_id: str, body: Rejection, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(s: Session) -> EnrolmentRead:
        _enrolment(s, ctx, enrolment_id)
        return EnrolmentRead.model_validate(enrolments.reject_application(
            s, ctx.tenant_id, enrolment_id, actor=ctx.actor, reason=body.reason))

    return ctx.write(body, run)


@router.get("/enrolments/{enrolment_id}/history", response_model=list[EnrolmentChangeRead],
            summary="Every status change of an enrolment")
def history(enrolment_id: str, ctx: Ctx = Depends(need("read"))) -> list[EnrolmentChangeRead]:
    with ctx.read() as s:
        _enrolment(s, ctx, enrolment_id)
        return [EnrolmentChangeRead.model_validate(c)
                for c in enrolments.enrolment_history(s, ctx.tenant_id, enrolment_id)]


# ---------------------------------------------------------------------------------------------
# Invitations


@router.post("/programs/{program_id}/invitations", status_code=201,
             response_model=InvitationIssued, summary="Invite someone to a program",
             description="The token is returned once (and handed to the mailer through the "
                         "member.invited event); only its hash is stored.")
def invite(program_id: str, body: InvitationCreate,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(s: Session) -> InvitationIssued:
        invitation, token = enrolments.invite(
            s, ctx.tenant_id, program_id, email=body.email, account_id=body.account_id,
            invited_by=ctx.actor, expires_in_days=body.expires_in_days)
        return InvitationIssued(
            id=invitation.id, program_id=invitation.program_id,
            account_id=invitation.account_id, email=invitation.email,
            status=invitation.status, created_at=invitation.created_at,
            expires_at=invitation.expires_at, token=token)

    return ctx.write(body, run, 201)


@router.post("/invitations/accept", response_model=EnrolmentRead,
             summary="Accept an invitation: the account's enrolment becomes active")
def accept(body: InvitationAccept, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(s: Session) -> EnrolmentRead:
        enrolment = enrolments.accept_invitation(s, ctx.tenant_id, body.token, body.account_id,
                                                 ctx.actor)
        ctx.check_program(enrolment.program_id)
        return EnrolmentRead.model_validate(enrolment)

    return ctx.write(body, run)


@router.post("/invitations/{invitation_id}/revoke", status_code=204,
             summary="Revoke a pending invitation")
def revoke(invitation_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(s: Session) -> None:
        invitation = enrolments.revoke_invitation(s, ctx.tenant_id, invitation_id, ctx.actor)
        ctx.check_program(invitation.program_id)

    return ctx.write(None, run, 204)
