"""Enrolments (by the program's enrolment mode), their status history, applications and
invitations. Functions take the caller's session and only flush."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, tenants
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.kit.pagination import Page, check_limit, decode_cursor, page_of
from allegiance.members import domain
from allegiance.members.errors import (
    AlreadyEnrolled,
    EnrolmentNotFound,
    InvalidStatusTransition,
    InvitationExpired,
    InvitationForOther,
    InvitationNotFound,
    InvitationRequired,
    InvitationRevoked,
    InvitationUsed,
    NotEnrolled,
    RegionNotEligible,
)
from allegiance.members.models import Account, Enrolment, EnrolmentChange, Invitation
from allegiance.members.service import _active_account, _text

# ---------------------------------------------------------------------------------------------
# Enrolments


def get_enrolment(session: Session, tenant_id: str, enrolment_id: str) -> Enrolment:
    enrolment = session.get(Enrolment, (tenant_id, enrolment_id))
    if enrolment is None:
        raise EnrolmentNotFound(f"enrolment {enrolment_id} not found", field="enrolment_id")
    return enrolment


def _enrolment_of(
    session: Session, tenant_id: str, program_id: str, account_id: str
) -> Enrolment | None:
    return session.scalars(select(Enrolment).where(
        Enrolment.tenant_id == tenant_id, Enrolment.program_id == program_id,
        Enrolment.account_id == account_id)).one_or_none()


def _record_change(
    session: Session, tenant_id: str, enrolment: Enrolment, from_status: str | None,
    actor: str, reason: str | None,
) -> None:
    now = clock.now()
    session.add(EnrolmentChange(
        tenant_id=tenant_id, id=new_id("enc"), enrolment_id=enrolment.id,
        from_status=from_status, to_status=enrolment.status, reason=reason, actor=actor, at=now,
    ))
    session.flush()
    payload = {"enrolment_id": enrolment.id, "program_id": enrolment.program_id,
               "account_id": enrolment.account_id, "from_status": from_status,
               "status": enrolment.status, "reason": reason}
    if from_status is None:
        outbox.emit(session, tenant_id, "member.enrolled", payload)
        action = "enrolment.created"
    else:
        outbox.emit(session, tenant_id, "enrolment.status_changed", payload)
        action = "enrolment.status_changed"
    audit.record(session, tenant_id, actor=actor, action=action, object_type="enrolment",
                 object_id=enrolment.id,
                 before=None if from_status is None else {"status": from_status},
                 after={"status": enrolment.status, "reason": reason})
    if enrolment.status == "closed" and from_status is not None:
        # a closed member keeps no paid plan: its subscriptions end now (with their perks)
        from allegiance import memberships  # at run time: memberships builds on members

        memberships.end_with_enrolment(session, tenant_id, enrolment.program_id,
                                       enrolment.account_id, actor=actor)


def _create_enrolment(
    session: Session, tenant_id: str, program: tenants.Program, account: Account, status: str,
    *, actor: str, application: dict[str, Any] | None = None, reason: str | None = None,
) -> Enrolment:
    if not tenants.region_eligible(list(program.eligible_regions), account.region):
        raise RegionNotEligible(
            f"accounts in {account.region or 'no region'} may not join {program.code}",
            field="region")
    now = clock.now()
    enrolment = Enrolment(
        tenant_id=tenant_id, id=new_id("enr"), program_id=program.id, account_id=account.id,
        status=status, tier=None, application=dict(application or {}), created_at=now,
        updated_at=now,
    )
    add_unique(session, enrolment, AlreadyEnrolled(f"account {account.id} is already enrolled", field="account_id"))
    _record_change(session, tenant_id, enrolment, None, actor, reason)
    return enrolment


def enrol(
    session: Session,
    tenant_id: str,
    program_id: str,
    account_id: str,
    *,
    actor: str,
    application: dict[str, Any] | None = None,
    invitation_token: str | None = None,
) -> Enrolment:
    """Enrol an account as the program's enrolment mode says: open and automatic programs
    activate at once, application programs record an application, invitation programs need a
    valid invitation token."""
    program = tenants.get_program(session, tenant_id, program_id)
    if invitation_token is not None:
        return _accept(session, tenant_id, invitation_token, account_id, actor, program.id)
    account = _active_account(session, tenant_id, account_id, "account_id")
    existing = _enrolment_of(session, tenant_id, program.id, account.id)
    if existing is not None:
        raise AlreadyEnrolled(f"account {account_id} is already {existing.status} here",
                              field="account_id", status=existing.status)
    status = domain.initial_status(program.enrolment_mode, invited=False)
    if status is None:
        raise InvitationRequired(f"program {program.code} is by invitation only",
                                 field="invitation_token")
    return _create_enrolment(session, tenant_id, program, account, status, actor=actor,
                             application=application)


def ensure_enrolled(
    session: Session, tenant_id: str, program_id: str, account_id: str, actor: str
) -> Enrolment:
    """The account's active enrolment, created on first event when the program enrols
    automatically (or is open); raises :class:`NotEnrolled` otherwise."""
    existing = _enrolment_of(session, tenant_id, program_id, account_id)
    if existing is not None:
        if existing.status != "active":
            raise NotEnrolled(f"the enrolment of {account_id} is {existing.status}",
                              field="account_id", status=existing.status)
        return existing
    program = tenants.get_program(session, tenant_id, program_id)
    if not domain.joins_automatically(program.enrolment_mode):
        raise NotEnrolled(f"account {account_id} is not enrolled in {program.code}",
                          field="account_id")
    account = _active_account(session, tenant_id, account_id, "account_id")
    try:
        return _create_enrolment(session, tenant_id, program, account, "active", actor=actor,
                                 reason="automatic enrolment")
    except AlreadyEnrolled:  # enrolled concurrently
        found = _enrolment_of(session, tenant_id, program_id, account_id)
        if found is None or found.status != "active":
            raise
        return found


def change_enrolment_status(
    session: Session,
    tenant_id: str,
    enrolment_id: str,
    to_status: str,
    *,
    actor: str,
    reason: str | None = None,
) -> Enrolment:
    enrolment = get_enrolment(session, tenant_id, enrolment_id)
    from_status = enrolment.status
    if not domain.may_change_status(from_status, to_status):
        raise InvalidStatusTransition(
            f"an enrolment cannot go from {from_status} to {to_status}", field="to_status",
            from_status=from_status)
    enrolment.status = to_status
    enrolment.updated_at = clock.now()
    _record_change(session, tenant_id, enrolment, from_status, actor,
                   _text(reason, "reason", max_len=1000))
    return enrolment


ENDED = ("closed", "rejected")


def end_enrolments(session: Session, tenant_id: str, account_id: str, *, actor: str,
                   reason: str) -> list[Enrolment]:
    """Close every enrolment of the account that has not ended (applied, invited, active or
    suspended), each through :func:`change_enrolment_status` — history row, audit record and
    ``enrolment.status_changed`` message with the reason, like any other change. Returns the
    enrolments closed. (Used by the GDPR erasure with reason ``erased``.)"""
    rows = list(session.scalars(select(Enrolment).where(
        Enrolment.tenant_id == tenant_id, Enrolment.account_id == account_id,
        Enrolment.status.not_in(ENDED)).order_by(Enrolment.id)))
    return [change_enrolment_status(session, tenant_id, row.id, "closed", actor=actor,
                                    reason=reason) for row in rows]


def approve_application(
    session: Session, tenant_id: str, enrolment_id: str, *, actor: str, reason: str | None = None
) -> Enrolment:
    enrolment = get_enrolment(session, tenant_id, enrolment_id)
    if enrolment.status != "applied":
        raise InvalidStatusTransition(f"the enrolment is {enrolment.status}, not applied",
                                      field="enrolment_id")
    return change_enrolment_status(session, tenant_id, enrolment_id, "active", actor=actor,
                                   reason=reason)


def reject_application(
    session: Session, tenant_id: str, enrolment_id: str, *, actor: str, reason: str
) -> Enrolment:
    if not _text(reason, "reason", max_len=1000, required=True):
        raise ValidationFailed("a reason is required", field="reason")
    enrolment = get_enrolment(session, tenant_id, enrolment_id)
    if enrolment.status != "applied":
        raise InvalidStatusTransition(f"the enrolment is {enrolment.status}, not applied",
                                      field="enrolment_id")
    return change_enrolment_status(session, tenant_id, enrolment_id, "rejected", actor=actor,
                                   reason=reason)


def list_enrolments(
    session: Session,
    tenant_id: str,
    *,
    program_id: str | None = None,
    status: str | None = None,
    account_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Enrolment]:
    check_limit(limit)
    stmt = select(Enrolment).where(Enrolment.tenant_id == tenant_id)
    if program_id is not None:
        stmt = stmt.where(Enrolment.program_id == program_id)
    if status is not None:
        stmt = stmt.where(Enrolment.status == status)
    if account_id is not None:
        stmt = stmt.where(Enrolment.account_id == account_id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(Enrolment.id > after)
    rows = list(session.scalars(stmt.order_by(Enrolment.id).limit(limit + 1)))
    return page_of(rows, limit, rows[limit - 1].id if len(rows) > limit else None)


def enrolment_history(session: Session, tenant_id: str, enrolment_id: str) -> list[EnrolmentChange]:
    """Every status change, oldest first."""
    get_enrolment(session, tenant_id, enrolment_id)
    rows = list(session.scalars(
        select(EnrolmentChange).where(EnrolmentChange.tenant_id == tenant_id,
                                      EnrolmentChange.enrolment_id == enrolment_id)
        .order_by(EnrolmentChange.at, EnrolmentChange.id)
    ))
    order = domain.chain_order([(r.at.isoformat(), r.from_status, r.to_status) for r in rows])
    return [rows[i] for i in order]


# ---------------------------------------------------------------------------------------------
# Invitations


def invite(
    session: Session,
    tenant_id: str,
    program_id: str,
    *,
    email: str,
    account_id: str | None = None,
    invited_by: str,
    expires_in_days: int = 14,
) -> tuple[Invitation, str]:
    """An invitation to join; returns it and its token (shown once, stored only hashed).
    Emits ``member.invited`` with the token so a mailer can deliver it."""
    program = tenants.get_program(session, tenant_id, program_id)
    clean_email = _text(email, "email", max_len=320, required=True) or ""
    if "@" not in clean_email:
        raise ValidationFailed("email is not an e-mail address", field="email")
    if not 1 <= expires_in_days <= 365:
        raise ValidationFailed("expires_in_days must be between 1 and 365",
                               field="expires_in_days")
    if account_id is not None:
        account = _active_account(session, tenant_id, account_id, "account_id")
        existing = _enrolment_of(session, tenant_id, program.id, account_id)
        if existing is not None and existing.status != "invited":
            raise AlreadyEnrolled(f"account {account_id} is already {existing.status} here",
                                  field="account_id", status=existing.status)
        if existing is None:
            _create_enrolment(session, tenant_id, program, account, "invited",
                              actor=invited_by, reason="invited")
    token = domain.new_token()
    now = clock.now()
    invitation = Invitation(
        tenant_id=tenant_id, id=new_id("inv"), program_id=program.id, account_id=account_id,
        email=clean_email, token_hash=domain.hash_token(token), status="pending",
        invited_by=invited_by, created_at=now, expires_at=now + timedelta(days=expires_in_days),
        accepted_at=None,
    )
    session.add(invitation)
    session.flush()
    outbox.emit(session, tenant_id, "member.invited", {
        "invitation_id": invitation.id, "program_id": program.id, "account_id": account_id,
        "email": clean_email, "token": token, "expires_at": invitation.expires_at.isoformat(),
    })
    audit.record(session, tenant_id, actor=invited_by, action="invitation.created",
                 object_type="invitation", object_id=invitation.id,
                 after={"program_id": program.id, "account_id": account_id,
                        "email": clean_email, "expires_at": invitation.expires_at.isoformat()})
    return invitation, token


def revoke_invitation(session: Session, tenant_id: str, invitation_id: str, actor: str) -> Invitation:
    invitation = session.get(Invitation, (tenant_id, invitation_id))
    if invitation is None:
        raise InvitationNotFound(f"invitation {invitation_id} not found", field="invitation_id")
    if invitation.status != "pending":
        raise InvitationUsed(f"the invitation is {invitation.status}", field="invitation_id")
    invitation.status = "revoked"
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="invitation.revoked",
                 object_type="invitation", object_id=invitation_id,
                 before={"status": "pending"}, after={"status": "revoked"})
    return invitation


def accept_invitation(
    session: Session, tenant_id: str, token: str, account_id: str, actor: str
) -> Enrolment:
    """Use an invitation token: the account's enrolment becomes active."""
    return _accept(session, tenant_id, token, account_id, actor, None)


def _accept(
    session: Session, tenant_id: str, token: str, account_id: str, actor: str,
    program_id: str | None,
) -> Enrolment:
    invitation = session.scalars(select(Invitation).where(
        Invitation.tenant_id == tenant_id,
        Invitation.token_hash == domain.hash_token(token or ""))).one_or_none()
    if invitation is None:
        raise InvitationNotFound("no invitation has this token", field="invitation_token")
    if invitation.status == "revoked":
        raise InvitationRevoked("the invitation was revoked", field="invitation_token")
    if invitation.status == "accepted":
        raise InvitationUsed("the invitation was already used", field="invitation_token")
    if invitation.status == "expired" or invitation.expires_at <= clock.now():
        raise InvitationExpired("the invitation has expired", field="invitation_token")
    if program_id is not None and invitation.program_id != program_id:
        raise InvitationForOther("the invitation is for another program",
                                 field="invitation_token")
    if invitation.account_id is not None and invitation.account_id != account_id:
        raise InvitationForOther("the invitation is for another account",
                                 field="invitation_token")
    account = _active_account(session, tenant_id, account_id, "account_id")
    program = tenants.get_program(session, tenant_id, invitation.program_id)
    existing = _enrolment_of(session, tenant_id, program.id, account_id)
    if existing is not None and existing.status != "invited":
        raise AlreadyEnrolled(f"account {account_id} is already {existing.status} here",
                              field="account_id", status=existing.status)
    invitation.status = "accepted"
    invitation.accepted_at = clock.now()
    invitation.account_id = account_id
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="invitation.accepted",
                 object_type="invitation", object_id=invitation.id,
                 before={"status": "pending"}, after={"status": "accepted",
                                                      "account_id": account_id})
    if existing is not None:
        if not tenants.region_eligible(list(program.eligible_regions), account.region):
            raise RegionNotEligible(
                f"accounts in {account.region or 'no region'} may not join {program.code}",
                field="region")
        return change_enrolment_status(session, tenant_id, existing.id, "active", actor=actor,
                                       reason=f"invitation {invitation.id} accepted")
    return _create_enrolment(session, tenant_id, program, account, "active", actor=actor,
                             reason=f"invitation {invitation.id} accepted")

