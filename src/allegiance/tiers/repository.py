"""Every query of the tiers feature but the set-based recalculation of a ladder (its own
module, ``recalculation``).

The account hierarchy (``account.parent_id``) and enrolments are read, and ``enrolment.tier`` is
written for the primary ladder, through lightweight table clauses: set-based work over another
feature's table is allowed to repositories (one statement for a million members instead of a
call per member), and it is confined to this file and ``recalculation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    case,
    column,
    func,
    literal,
    select,
    table,
    update,
)
from sqlalchemy.orm import Session

from allegiance.kit.db import dialect_insert
from allegiance.tiers import domain
from allegiance.tiers.models import TierChange, TierLadder, TierMetric, TierStatus

# Read-only views of the members feature's tables (plus enrolment.tier for the primary ladder).
account_t = table("account", column("tenant_id"), column("id"), column("parent_id"),
                  column("attributes", JSON))
enrolment_t = table(
    "enrolment", column("tenant_id"), column("program_id"), column("account_id"),
    column("status"), column("tier"), column("updated_at"),
)

MAX_DEPTH = 64


# ---------------------------------------------------------------------------------------------
# Ladders


def ladders_of(session: Session, tenant_id: str, program_id: str) -> list[TierLadder]:
    return list(session.scalars(
        select(TierLadder)
        .where(TierLadder.tenant_id == tenant_id, TierLadder.program_id == program_id)
        .order_by(TierLadder.id)
    ))


def get_ladder(session: Session, tenant_id: str, ladder_id: str) -> TierLadder | None:
    return session.get(TierLadder, (tenant_id, ladder_id))


def lock_ladder(session: Session, tenant_id: str, ladder_id: str) -> None:
    """Serialise recalculations of one ladder (PostgreSQL; SQLite writers are serial anyway)."""
    session.execute(
        select(TierLadder.id)
        .where(TierLadder.tenant_id == tenant_id, TierLadder.id == ladder_id)
        .with_for_update()
    )


def account_exists(session: Session, tenant_id: str, account_id: str) -> bool:
    found = session.execute(
        select(account_t.c.id).where(account_t.c.tenant_id == tenant_id,
                                     account_t.c.id == account_id)
    ).first()
    return found is not None


def account_attributes(session: Session, tenant_id: str, account_id: str) -> dict[str, Any]:
    found = session.execute(
        select(account_t.c.attributes).where(account_t.c.tenant_id == tenant_id,
                                             account_t.c.id == account_id)
    ).scalar()
    return dict(found or {})


def ancestors_or_self(session: Session, tenant_id: str, account_id: str) -> list[str]:
    """The account and its parents up to the root, nearest first."""
    found = [account_id]
    current = account_id
    for _ in range(MAX_DEPTH):
        parent = session.execute(
            select(account_t.c.parent_id).where(account_t.c.tenant_id == tenant_id,
                                                account_t.c.id == current)
        ).scalar()
        if parent is None or parent in found:
            break
        found.append(parent)
        current = parent
    return found


def descendants_or_self(session: Session, tenant_id: str, account_id: str) -> list[str]:
    base = (select(account_t.c.id.label("id"), literal(0).label("depth"))
            .where(account_t.c.tenant_id == tenant_id, account_t.c.id == account_id)
            .cte("descendants", recursive=True))
    child = account_t.alias("child")
    tree = base.union_all(
        select(child.c.id, base.c.depth + 1)
        .where(child.c.tenant_id == tenant_id, child.c.parent_id == base.c.id,
               base.c.depth < MAX_DEPTH)
    )
    return sorted(set(session.scalars(select(tree.c.id))))


# ---------------------------------------------------------------------------------------------
# Metrics


def add_metric(session: Session, tenant_id: str, program_id: str, metric: str, account_id: str,
               bucket: int, amount: int, at: datetime) -> None:
    """Add ``amount`` to the month's accumulated metric (one upsert)."""
    ins = dialect_insert(session)(TierMetric).values(
        tenant_id=tenant_id, program_id=program_id, metric=metric, account_id=account_id,
        bucket=bucket, value=amount, updated_at=at,
    )
    session.execute(ins.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "metric", "account_id", "bucket"],
        set_={"value": TierMetric.value + ins.excluded.value, "updated_at": ins.excluded.updated_at},
    ))


def set_metric(session: Session, tenant_id: str, program_id: str, metric: str, account_id: str,
               bucket: int, value: int, at: datetime) -> None:
    """Replace the month's reported value unless a later report is already stored."""
    ins = dialect_insert(session)(TierMetric).values(
        tenant_id=tenant_id, program_id=program_id, metric=metric, account_id=account_id,
        bucket=bucket, value=value, updated_at=at,
    )
    session.execute(ins.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "metric", "account_id", "bucket"],
        set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
        where=TierMetric.updated_at <= ins.excluded.updated_at,
    ))


def metric_value(session: Session, tenant_id: str, program_id: str, metric: str,
                 account_ids: Sequence[str], first: int, last: int) -> int:
    """The metric summed over ``account_ids``: accumulated over months ``first..last``, reported
    as each account's latest value up to ``last``."""
    m = TierMetric
    where = [m.tenant_id == tenant_id, m.program_id == program_id, m.metric == metric,
             m.account_id.in_(list(account_ids))]
    if domain.is_accumulated(metric):
        stmt = select(func.coalesce(func.sum(m.value), 0)).where(
            *where, m.bucket >= first, m.bucket <= last)
    else:
        m2 = TierMetric.__table__.alias("later")
        latest = (select(func.max(m2.c.bucket))
                  .where(m2.c.tenant_id == m.tenant_id, m2.c.program_id == m.program_id,
                         m2.c.metric == m.metric, m2.c.account_id == m.account_id,
                         m2.c.bucket <= last)
                  .scalar_subquery())
        stmt = select(func.coalesce(func.sum(m.value), 0)).where(*where, m.bucket == latest)
    return int(session.execute(stmt).scalar_one())


# ---------------------------------------------------------------------------------------------
# Statuses and history


def _ladder_ids(tenant_id: str, program_id: str) -> Any:
    return (select(TierLadder.id)
            .where(TierLadder.tenant_id == tenant_id, TierLadder.program_id == program_id)
            .scalar_subquery())


def statuses_of(session: Session, tenant_id: str, program_id: str,
                account_id: str) -> list[TierStatus]:
    return list(session.scalars(
        select(TierStatus).where(TierStatus.tenant_id == tenant_id,
                                 TierStatus.ladder_id.in_(_ladder_ids(tenant_id, program_id)),
                                 TierStatus.account_id == account_id)
    ))


def status_for_update(session: Session, tenant_id: str, program_id: str, ladder_id: str,
                      account_id: str, anchor: int, at: datetime) -> TierStatus:
    """The account's status row on the ladder, created if missing, locked for this transaction."""
    ins = dialect_insert(session)(TierStatus).values(
        tenant_id=tenant_id, ladder_id=ladder_id, account_id=account_id, program_id=program_id,
        level_code=None, level_rank=domain.NO_LEVEL, since=None, locked=False, lock_reason=None,
        anchor_month=anchor, version=0, updated_at=at,
    )
    session.execute(ins.on_conflict_do_nothing(
        index_elements=["tenant_id", "ladder_id", "account_id"]))
    return session.scalars(
        select(TierStatus)
        .where(TierStatus.tenant_id == tenant_id, TierStatus.ladder_id == ladder_id,
               TierStatus.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def add_change(session: Session, status: TierStatus, *, to_rank: int, to_code: str | None,
               reason: str, actor: str, note: str | None, value: int | None,
               at: datetime) -> TierChange:
    change = TierChange(
        tenant_id=status.tenant_id, ladder_id=status.ladder_id, account_id=status.account_id,
        seq=status.version + 1, program_id=status.program_id, from_level=status.level_code,
        to_level=to_code, reason=reason, actor=actor, note=note, value=value, at=at,
    )
    session.add(change)
    status.version += 1
    status.level_rank = to_rank
    status.level_code = to_code
    status.since = at
    status.updated_at = at
    session.flush()
    return change


def set_enrolment_tier(session: Session, tenant_id: str, program_id: str, account_id: str,
                       tier: str | None, at: datetime) -> None:
    session.execute(
        update(enrolment_t)
        .where(enrolment_t.c.tenant_id == tenant_id, enrolment_t.c.program_id == program_id,
               enrolment_t.c.account_id == account_id)
        .values(tier=tier, updated_at=at)
    )


def history(session: Session, tenant_id: str, program_id: str, account_id: str,
            limit: int, before: tuple[datetime, str, int] | None = None) -> list[TierChange]:
    """Changes newest first; ``before`` is the (at, ladder_id, seq) of the last row seen."""
    c = TierChange
    stmt = select(c).where(c.tenant_id == tenant_id,
                           c.ladder_id.in_(_ladder_ids(tenant_id, program_id)),
                           c.account_id == account_id)
    if before is not None:
        at, ladder_id, seq = before
        stmt = stmt.where(
            (c.at < at) | ((c.at == at) & (c.ladder_id < ladder_id))
            | ((c.at == at) & (c.ladder_id == ladder_id) & (c.seq < seq))
        )
    stmt = stmt.order_by(c.at.desc(), c.ladder_id.desc(), c.seq.desc()).limit(limit)
    return list(session.scalars(stmt))


def remap_ranks(session: Session, tenant_id: str, ladder: TierLadder,
                new: domain.Ladder) -> None:
    """After a ladder's levels change, renumber the stored ranks by level code."""
    ranks = {level.code: rank for rank, level in enumerate(new.levels)}
    s = TierStatus
    session.execute(
        update(s)
        .where(s.tenant_id == tenant_id, s.ladder_id == ladder.id, s.level_code.is_not(None))
        .values(level_rank=case(ranks, value=s.level_code, else_=domain.NO_LEVEL))
    )


def codes_in_use(session: Session, tenant_id: str, ladder_id: str) -> set[str]:
    rows = session.scalars(
        select(TierStatus.level_code).distinct()
        .where(TierStatus.tenant_id == tenant_id, TierStatus.ladder_id == ladder_id,
               TierStatus.level_code.is_not(None))
    )
    return {r for r in rows if r is not None}
