"""Portal credentials of member users: an invitation link to set a password (delivered by
e-mail through the outbox event ``portal.invitation``), setting it, and checking it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, members
from allegiance.kit import clock, outbox
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.operators import domain, passwords, sessions
from allegiance.operators.errors import InvalidLink
from allegiance.operators.models import PortalInvitation
from allegiance.operators.service import check_password

INVITATION_DAYS = 7


def invite(session: Session, tenant_id: str, user_id: str, *, actor: str,
           base_url: str) -> tuple[PortalInvitation, str]:
    """A password-set link for a member user; returns the invitation and its token (shown
    once, stored hashed). The e-mail goes out from the ``portal.invitation`` outbox event."""
    user = members.get_user(session, tenant_id, user_id)
    if not user.email:
        raise ValidationFailed("the user has no e-mail address to send the link to",
                               field="user_id")
    if user.status != "active":
        raise ValidationFailed(f"the user is {user.status}", field="user_id")
    token = domain.new_token()
    now = clock.now()
    row = PortalInvitation(tenant_id=tenant_id, id=new_id("pin"), user_id=user.id,
                           token_hash=domain.hash_token(token), created_by=actor,
                           created_at=now, expires_at=now + timedelta(days=INVITATION_DAYS),
                           used_at=None)
    session.add(row)
    session.flush()
    link = f"{base_url.rstrip('/')}/portal/set-password?token={token}"
    outbox.emit(session, tenant_id, "portal.invitation", {
        "invitation_id": row.id, "user_id": user.id, "account_id": user.account_id,
        "email": user.email, "name": user.name, "link": link,
        "expires_at": row.expires_at.isoformat(),
    })
    audit.record(session, tenant_id, actor=actor, action="portal.invited",
                 object_type="member_user", object_id=user.id,
                 after={"invitation_id": row.id, "expires_at": row.expires_at.isoformat()})
    return row, token


def invitation_of(session: Session, token: str) -> PortalInvitation:
    """The usable invitation of a link token, or :class:`InvalidLink`."""
    row = session.scalars(select(PortalInvitation).where(
        PortalInvitation.token_hash == domain.hash_token(token or ""))).first()
    if row is None or row.used_at is not None or row.expires_at <= clock.now():
        raise InvalidLink("this link is not valid any more; ask for a new invitation",
                          field="token")
    return row


def set_password_with_link(session: Session, token: str, password: str) -> members.User:
    """Use an invitation link: set the user's password, end its other sessions."""
    row = invitation_of(session, token)
    user = members.get_user(session, row.tenant_id, row.user_id)
    check_password(password, user.email)
    user.password_hash = passwords.hash_password(password)
    user.updated_at = clock.now()
    row.used_at = clock.now()
    session.flush()
    sessions.revoke_all(session, row.tenant_id, "member", user.id)
    audit.record(session, row.tenant_id, actor=f"member_user:{user.id}",
                 action="portal.password_set", object_type="member_user", object_id=user.id,
                 after={"invitation_id": row.id})
    return user


def set_password(session: Session, tenant_id: str, user_id: str, password: str, *,
                 actor: str) -> members.User:
    """Set a member user's portal password directly (demo data, operators' tools)."""
    user = members.get_user(session, tenant_id, user_id)
    check_password(password, user.email)
    user.password_hash = passwords.hash_password(password)
    user.updated_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="portal.password_set",
                 object_type="member_user", object_id=user.id)
    return user


def verify(session: Session, email: str, password: str) -> list[members.User]:
    """The active member users (of active accounts), in any tenant, with this e-mail and
    password."""
    clean = domain.normal_email(email or "")
    rows = list(session.scalars(
        select(members.User).where(members.User.email == clean)
        .order_by(members.User.created_at, members.User.id)))
    if not rows:
        passwords.verify_password(None, password)
        return []
    matched = []
    for user in rows:
        if not passwords.verify_password(user.password_hash, password):
            continue
        if user.status != "active":
            continue
        account = members.get_account(session, user.tenant_id, user.account_id)
        if account.status == "active":
            if user.password_hash and passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash_password(password)
            matched.append(user)
    session.flush()
    return matched
