"""Web sessions: a random token in an HttpOnly cookie, its SHA-256 in ``web_session``; a CSRF
token per session; idle and absolute lifetimes; one-shot messages for the next page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from allegiance.kit import clock
from allegiance.kit.ids import new_id
from allegiance.operators import domain
from allegiance.operators.models import WebSession


@dataclass(frozen=True)
class Lifetime:
    idle: timedelta
    absolute: timedelta


LIFETIMES = {
    "operator": Lifetime(idle=timedelta(hours=2), absolute=timedelta(hours=12)),
    "member": Lifetime(idle=timedelta(days=3), absolute=timedelta(days=14)),
}
TOUCH_EVERY = timedelta(minutes=1)


def start(session: Session, tenant_id: str, kind: str, user_id: str, *,
          grants: list[dict[str, str]] | None = None,
          program_id: str | None = None) -> tuple[WebSession, str]:
    """A new session; returns it and the cookie token (never stored)."""
    token = domain.new_token()
    now = clock.now()
    row = WebSession(tenant_id=tenant_id, id=new_id("ses"), token_hash=domain.hash_token(token),
                     kind=kind, user_id=user_id, csrf_token=domain.new_token(),
                     grants=grants or [], program_id=program_id, flash={}, created_at=now,
                     last_seen_at=now, expires_at=now + LIFETIMES[kind].absolute,
                     revoked_at=None)
    session.add(row)
    session.flush()
    return row, token


def find(session: Session, token: str | None, kind: str) -> WebSession | None:
    """The live session of a cookie token, or None (unknown, revoked, expired or idle)."""
    if not token or len(token) > 200:
        return None
    row = session.scalars(select(WebSession).where(
        WebSession.token_hash == domain.hash_token(token), WebSession.kind == kind)).first()
    if row is None or row.revoked_at is not None:
        return None
    now = clock.now()
    if row.expires_at <= now or row.last_seen_at + LIFETIMES[kind].idle <= now:
        return None
    return row


def touch_due(row: WebSession) -> bool:
    return row.last_seen_at + TOUCH_EVERY <= clock.now()


def touch(session: Session, row: WebSession) -> None:
    session.execute(update(WebSession).where(
        WebSession.tenant_id == row.tenant_id, WebSession.id == row.id)
        .values(last_seen_at=clock.now()))


def revoke(session: Session, tenant_id: str, session_id: str) -> None:
    session.execute(update(WebSession).where(
        WebSession.tenant_id == tenant_id, WebSession.id == session_id,
        WebSession.revoked_at.is_(None)).values(revoked_at=clock.now()))


def revoke_all(session: Session, tenant_id: str, kind: str, user_id: str) -> None:
    """End every session of a user (after a password change or when disabled)."""
    session.execute(update(WebSession).where(
        WebSession.tenant_id == tenant_id, WebSession.kind == kind,
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=clock.now()))


def set_program(session: Session, tenant_id: str, session_id: str, program_id: str) -> None:
    session.execute(update(WebSession).where(
        WebSession.tenant_id == tenant_id, WebSession.id == session_id)
        .values(program_id=program_id))


def set_flash(session: Session, tenant_id: str, session_id: str, kind: str, text: str) -> None:
    session.execute(update(WebSession).where(
        WebSession.tenant_id == tenant_id, WebSession.id == session_id)
        .values(flash={"kind": kind, "text": text[:500]}))


def pop_flash(session: Session, row: WebSession) -> dict[str, Any]:
    """The session's message (once); empty when there is none."""
    message = dict(row.flash or {})
    if message:
        session.execute(update(WebSession).where(
            WebSession.tenant_id == row.tenant_id, WebSession.id == row.id).values(flash={}))
    return message
