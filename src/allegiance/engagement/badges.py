"""Badges with levels: defined per program, awarded by challenges or by an operator; an
account's level only goes up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, members, tenants
from allegiance.engagement.errors import BadgeNotFound, DuplicateCode, InvalidBadge
from allegiance.engagement.models import AccountBadge, Badge
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id


def create_badge(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                 levels: list[str] | None = None) -> Badge:
    tenants.get_program(session, tenant_id, program_id)
    names = [str(level).strip() for level in (levels or [name])]
    if not names or any(not n or len(n) > 100 for n in names) or len(names) > 20:
        raise InvalidBadge("levels are 1 to 20 names of 1 to 100 characters", field="levels")
    badge = Badge(tenant_id=tenant_id, id=new_id("bdg"), program_id=program_id, code=code,
                  name=name, levels=names, created_at=clock.now())
    add_unique(session, badge, DuplicateCode(f"badge {code} exists in this program", field="code"))
    return badge


def find_badge(session: Session, tenant_id: str, program_id: str, code: str) -> Badge | None:
    return session.scalar(select(Badge).where(
        Badge.tenant_id == tenant_id, Badge.program_id == program_id, Badge.code == code))


def badge_by_code(session: Session, tenant_id: str, program_id: str, code: str) -> Badge:
    badge = find_badge(session, tenant_id, program_id, code)
    if badge is None:
        raise BadgeNotFound(f"badge {code} not found in this program", field="badge")
    return badge


def list_badges(session: Session, tenant_id: str, program_id: str) -> list[Badge]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Badge).where(
        Badge.tenant_id == tenant_id, Badge.program_id == program_id).order_by(Badge.code)))


def award_badge(session: Session, tenant_id: str, program_id: str, account_id: str, code: str,
                *, level: int | None = None, source: str, actor: str,
                at: datetime | None = None) -> AccountBadge:
    """Give ``account_id`` the badge at ``level`` (default: one level above what it holds,
    capped at the top level). A level at or below the one held changes nothing."""
    badge = badge_by_code(session, tenant_id, program_id, code)
    members.get_account(session, tenant_id, account_id)
    top = len(badge.levels)
    if level is not None and not 1 <= level <= top:
        raise InvalidBadge(f"level must be 1 to {top}", field="level")
    now = at or clock.now()
    held = session.get(AccountBadge, (tenant_id, badge.id, account_id), with_for_update=True)
    if held is None:
        held = AccountBadge(tenant_id=tenant_id, badge_id=badge.id, account_id=account_id,
                            level=level or 1, awarded_at=now, updated_at=now, source=source)
        session.add(held)
    else:
        wanted = level if level is not None else min(held.level + 1, top)
        if wanted <= held.level:
            return held
        held.level, held.updated_at, held.source = wanted, now, source
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="badge.award", object_type="account",
                 object_id=account_id, after={"badge": code, "level": held.level,
                                              "source": source})
    outbox.emit(session, tenant_id, "badge.awarded", {
        "program_id": program_id, "account_id": account_id, "badge": code,
        "level": held.level, "level_name": badge.levels[held.level - 1]})
    return held


@dataclass(frozen=True)
class HeldBadge:
    code: str
    name: str
    level: int
    level_name: str
    levels: int
    awarded_at: datetime
    updated_at: datetime


def badges_of(session: Session, tenant_id: str, program_id: str,
              account_id: str) -> list[HeldBadge]:
    members.get_account(session, tenant_id, account_id)
    rows = session.execute(select(Badge, AccountBadge).join(AccountBadge, (
        AccountBadge.tenant_id == Badge.tenant_id) & (AccountBadge.badge_id == Badge.id)).where(
        Badge.tenant_id == tenant_id, Badge.program_id == program_id,
        AccountBadge.account_id == account_id).order_by(Badge.code))
    return [HeldBadge(b.code, b.name, h.level, b.levels[h.level - 1], len(b.levels),
                      h.awarded_at, h.updated_at) for b, h in rows]
