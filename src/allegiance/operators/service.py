"""Operator users: create, list, change role or status, and check a password at sign-in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit import clock
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.operators import domain, passwords
from allegiance.operators.errors import InvalidPassword, OperatorExists, OperatorNotFound
from allegiance.operators.models import OperatorUser


def _clean_email(email: str) -> str:
    clean = domain.normal_email(email or "")
    if "@" not in clean or len(clean) > 320 or any(c.isspace() for c in clean):
        raise ValidationFailed("enter an e-mail address", field="email")
    return clean


def check_password(password: str, email: str | None = None) -> None:
    problem = domain.password_problem(password or "", email)
    if problem is not None:
        raise InvalidPassword(problem, field="password")


def create_operator(session: Session, tenant_id: str, *, email: str, name: str, role: str,
                    password: str, actor: str) -> OperatorUser:
    clean = _clean_email(email)
    if role not in domain.ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(domain.ROLES)}", field="role")
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a name of 1 to 200 characters is needed", field="name")
    check_password(password, clean)
    if session.scalars(select(OperatorUser.id).where(
            OperatorUser.tenant_id == tenant_id, OperatorUser.email == clean)).first():
        raise OperatorExists(f"an operator with e-mail {clean} exists", field="email")
    now = clock.now()
    row = OperatorUser(tenant_id=tenant_id, id=new_id("opr"), email=clean, name=name, role=role,
                       password_hash=passwords.hash_password(password), status="active",
                       last_sign_in_at=None, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="operator.created",
                 object_type="operator", object_id=row.id,
                 after={"email": clean, "name": name, "role": role})
    return row


def get_operator(session: Session, tenant_id: str, operator_id: str) -> OperatorUser:
    row = session.get(OperatorUser, (tenant_id, operator_id))
    if row is None:
        raise OperatorNotFound(f"operator {operator_id} not found", field="operator_id")
    return row


def operator_by_email(session: Session, tenant_id: str, email: str) -> OperatorUser | None:
    return session.scalars(select(OperatorUser).where(
        OperatorUser.tenant_id == tenant_id,
        OperatorUser.email == domain.normal_email(email))).one_or_none()


def list_operators(session: Session, tenant_id: str) -> list[OperatorUser]:
    return list(session.scalars(select(OperatorUser).where(OperatorUser.tenant_id == tenant_id)
                                .order_by(OperatorUser.email)))


def update_operator(session: Session, tenant_id: str, operator_id: str, *,
                    role: str | None = None, status: str | None = None,
                    actor: str) -> OperatorUser:
    row = get_operator(session, tenant_id, operator_id)
    before = {"role": row.role, "status": row.status}
    if role is not None:
        if role not in domain.ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(domain.ROLES)}",
                                   field="role")
        row.role = role
    if status is not None:
        if status not in ("active", "disabled"):
            raise ValidationFailed("status must be active or disabled", field="status")
        row.status = status
    row.updated_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="operator.updated",
                 object_type="operator", object_id=row.id, before=before,
                 after={"role": row.role, "status": row.status})
    return row


def set_password(session: Session, tenant_id: str, operator_id: str, password: str, *,
                 actor: str) -> OperatorUser:
    row = get_operator(session, tenant_id, operator_id)
    check_password(password, row.email)
    row.password_hash = passwords.hash_password(password)
    row.updated_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="operator.password_set",
                 object_type="operator", object_id=row.id)
    return row


def verify(session: Session, email: str, password: str) -> list[OperatorUser]:
    """The active operator users, in any tenant, with this e-mail and password (the first
    created first). Upgrades a hash whose parameters are out of date."""
    clean = domain.normal_email(email or "")
    rows = list(session.scalars(select(OperatorUser).where(OperatorUser.email == clean)
                                .order_by(OperatorUser.created_at, OperatorUser.id)))
    if not rows:
        passwords.verify_password(None, password)
        return []
    matched = []
    for row in rows:
        if passwords.verify_password(row.password_hash, password) and row.status == "active":
            if passwords.needs_rehash(row.password_hash):
                row.password_hash = passwords.hash_password(password)
            row.last_sign_in_at = clock.now()
            matched.append(row)
    session.flush()
    return matched
