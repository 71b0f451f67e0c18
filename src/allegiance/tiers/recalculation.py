"""The set-based recalculation of one ladder: every account of a program evaluated with a
handful of statements (the tiers feature's queries over ``account`` and ``enrolment``, as in
``repository``).

Per ladder, in the program's transaction: the grouped metric values of the window, qualified
by a ``CASE`` and decided against the accounts' statuses in one pass; the counts; then only
the writes that something moved needs (new statuses, moves, history rows, ``enrolment.tier``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from allegiance.tiers import domain
from allegiance.tiers.models import TierChange, TierMetric, TierStatus
from allegiance.tiers.repository import MAX_DEPTH, account_t, enrolment_t


def _audience(tenant_id: str, ladder: domain.Ladder) -> Any:
    """The ids of the accounts a ladder is for (string attribute values)."""
    return select(account_t.c.id).where(
        account_t.c.tenant_id == tenant_id,
        *[account_t.c.attributes[key].as_string().in_(list(allowed))
          for key, allowed in ladder.audience],
    )


# ---------------------------------------------------------------------------------------------
# Set-based recalculation of one ladder


def _closure(tenant_id: str) -> Any:
    """(ancestor, descendant) pairs of the tenant's account tree, each account with itself."""
    base = (select(account_t.c.id.label("ancestor"), account_t.c.id.label("descendant"),
                   literal(0).label("depth"))
            .where(account_t.c.tenant_id == tenant_id)
            .cte("closure", recursive=True))
    child = account_t.alias("child")
    return base.union_all(
        select(base.c.ancestor, child.c.id, base.c.depth + 1)
        .where(child.c.tenant_id == tenant_id, child.c.parent_id == base.c.descendant,
               base.c.depth < MAX_DEPTH)
    )


def _mod12(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    return ((expr % 12) + 12) % 12


def _latest_filter(m: Any, ref: int) -> ColumnElement[bool]:
    later = TierMetric.__table__.alias("later")
    latest = (select(func.max(later.c.bucket))
              .where(later.c.tenant_id == m.c.tenant_id, later.c.program_id == m.c.program_id,
                     later.c.metric == m.c.metric, later.c.account_id == m.c.account_id,
                     later.c.bucket <= ref)
              .scalar_subquery())
    found: ColumnElement[bool] = m.c.bucket == latest
    return found


def _aggregate(tenant_id: str, program_id: str, ladder_id: str, ladder: domain.Ladder,
               ref: int) -> Any:
    """account_id, value: each account's qualifying value for the window containing ``ref``."""
    m = TierMetric.__table__.alias("m")
    joined: Any = m
    owner: Any = m.c.account_id
    if ladder.rollup:
        closure = _closure(tenant_id)
        joined = joined.join(closure, closure.c.descendant == m.c.account_id)
        owner = closure.c.ancestor
    where = [m.c.tenant_id == tenant_id, m.c.program_id == program_id,
             m.c.metric == ladder.metric]
    if not domain.is_accumulated(ladder.metric):
        where.append(_latest_filter(m, ref))
    elif ladder.period.kind == "anniversary":
        st = TierStatus.__table__.alias("anchor")
        joined = joined.outerjoin(st, and_(st.c.tenant_id == tenant_id,
                                           st.c.ladder_id == ladder_id,
                                           st.c.account_id == owner))
        start = ref - _mod12(ref - func.coalesce(st.c.anchor_month, ref))
        where += [m.c.bucket >= start, m.c.bucket <= start + 11]
    else:
        first, last = ladder.period.bounds(ref)
        where += [m.c.bucket >= first, m.c.bucket <= last]
    return (select(owner.label("account_id"), func.sum(m.c.value).label("value"))
            .select_from(joined).where(*where).group_by(owner).subquery("agg"))


def _required_value(tenant_id: str, program_id: str, metric: str, account: Any,
                    bounds: tuple[int, int], ref: int) -> Any:
    m = TierMetric.__table__.alias("req")
    where = [m.c.tenant_id == tenant_id, m.c.program_id == program_id, m.c.metric == metric,
             m.c.account_id == account]
    if domain.is_accumulated(metric):
        where += [m.c.bucket >= bounds[0], m.c.bucket <= bounds[1]]
        value = select(func.sum(m.c.value)).where(*where)
    else:
        value = select(m.c.value).where(*where, _latest_filter(m, ref))
    return func.coalesce(value.scalar_subquery(), 0)


def _qualified(tenant_id: str, program_id: str, ladder: domain.Ladder, value: Any, account: Any,
               ref: int) -> Any:
    bounds = ladder.period.bounds(ref)
    whens = []
    for rank in range(len(ladder.levels) - 1, -1, -1):
        level = ladder.levels[rank]
        conds = [value >= level.threshold] + [
            _required_value(tenant_id, program_id, metric, account, bounds, ref) >= minimum
            for metric, minimum in level.requires.items()
        ]
        whens.append((and_(*conds), rank))
    return case(*whens, else_=domain.NO_LEVEL)


def _code_case(ladder: domain.Ladder, rank: Any) -> Any:
    return case({r: lvl.code for r, lvl in enumerate(ladder.levels)}, value=rank,
                else_=literal(None, String))


NEW = -2  # current_rank of an evaluated account that has no status row yet

# The evaluation of one ladder: a temporary table (no WAL, no fsync, dropped after use), one
# row per evaluated account with its value, rank before and rank decided.
# No key: the rows are appended in one pass like any grouped result; the steps that look
# accounts up in it (the accounts without a value, below) index it first.
scratch = Table(
    "tier_scratch", MetaData(),
    Column("account_id", String(40), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("current_rank", BigInteger, nullable=False),
    Column("target_rank", BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)


SCRATCH_COLUMNS = ["account_id", "value", "current_rank", "target_rank"]


def _evaluations(tenant_id: str, ladder_id: str, ladder: domain.Ladder, source: Any, *,
                 ref: int, period_end: bool, fresh: bool = False) -> Any:
    """The evaluation rows (account_id, value, current_rank, target_rank) of ``source``
    (account_id, value, qualified), deciding each account's target rank against its status:
    up at once, down only when its period ends.

    ``fresh``: the ladder has no status row yet, so every account is new and the lookup of
    its status (one index seek per account) is skipped."""
    if fresh:
        rows = select(source.c.account_id, source.c.value,
                      literal(NEW, BigInteger).label("current_rank"),
                      source.c.qualified.label("target_rank"))
    else:
        st = TierStatus.__table__.alias("st")
        falls: Any = None
        if period_end:
            falls = source.c.qualified < st.c.level_rank
            if ladder.period.kind == "anniversary":
                falls = and_(falls, _mod12(ref - st.c.anchor_month) == 11)
            elif not ladder.period.ends_at(ref):
                falls = None
        whens: list[Any] = [(st.c.level_rank.is_(None), source.c.qualified),
                            (st.c.locked == true(), st.c.level_rank),
                            (source.c.qualified > st.c.level_rank, source.c.qualified)]
        if falls is not None:
            down = (case((source.c.qualified >= st.c.level_rank - 1, source.c.qualified),
                         else_=st.c.level_rank - 1)
                    if ladder.grace == "one_step" else source.c.qualified)
            whens.append((falls, down))
        joined = source.outerjoin(st, and_(st.c.tenant_id == tenant_id,
                                           st.c.ladder_id == ladder_id,
                                           st.c.account_id == source.c.account_id))
        rows = (select(source.c.account_id, source.c.value,
                       func.coalesce(st.c.level_rank,
                                     literal(NEW, BigInteger)).label("current_rank"),
                       case(*whens, else_=st.c.level_rank).label("target_rank"))
                .select_from(joined))
    if ladder.audience:
        rows = rows.where(source.c.account_id.in_(_audience(tenant_id, ladder)))
    return rows


def _insert_evaluations(session: Session, tenant_id: str, ladder_id: str,
                        ladder: domain.Ladder, source: Any, *, ref: int,
                        period_end: bool, fresh: bool = False) -> None:
    rows = _evaluations(tenant_id, ladder_id, ladder, source, ref=ref, period_end=period_end,
                        fresh=fresh)
    session.execute(insert(scratch).from_select(SCRATCH_COLUMNS, _in_key_order(session, rows)))


def _in_key_order(session: Session, rows: Any) -> Any:
    """PostgreSQL: ``rows`` sorted by account (byte order, ``COLLATE "C"``: no locale
    comparisons) before they enter the scratch. Its rows come out of a hash aggregate in no
    order; kept in account order, the statements that read it write new statuses and history
    rows at the right edge of their keys (one cached leaf, full pages — an index larger than
    the buffer pool otherwise evicts and splits a random leaf per row) and update enrolments
    in account order (ids grow with time, as the table does) instead of a random page each
    (36 s then 12 s for 0.94 M moves at a million members, loaded machine). SQLite's
    grouping reads the metric rows in account order already."""
    if session.connection().dialect.name != "postgresql":
        return rows
    return rows.order_by(rows.selected_columns.account_id.collate("C"))


def _entering(current: Any, target: Any) -> Any:
    """An account without a status reaching a level."""
    return and_(current == NEW, target > domain.NO_LEVEL)


def _moving(current: Any, target: Any) -> Any:
    """An account with a status changing level."""
    return and_(current != NEW, target != current)


def _tally(session: Session, rows: Any) -> tuple[int, int, int, int, int]:
    """evaluated, upgraded, downgraded, entering, moving over ``rows`` (current_rank,
    target_rank): one scan, no write."""
    current, target = rows.c.current_rank, rows.c.target_rank
    up = and_(target > current, target > domain.NO_LEVEL)
    counts = session.execute(select(
        func.count(),
        func.coalesce(func.sum(case((up, 1), else_=0)), 0),
        func.coalesce(func.sum(case((target < current, 1), else_=0)), 0),
        func.coalesce(func.sum(case((_entering(current, target), 1), else_=0)), 0),
        func.coalesce(func.sum(case((_moving(current, target), 1), else_=0)), 0),
    ).select_from(rows)).one()
    evaluated, upgraded, downgraded, entering, moving = (int(v) for v in counts)
    return evaluated, upgraded, downgraded, entering, moving


def _has_statuses(session: Session, tenant_id: str, ladder_id: str) -> bool:
    found = session.execute(
        select(TierStatus.account_id)
        .where(TierStatus.tenant_id == tenant_id, TierStatus.ladder_id == ladder_id).limit(1)
    ).first()
    return found is not None


def recalculate_ladder(session: Session, tenant_id: str, program_id: str, ladder_id: str,
                       ladder: domain.Ladder, *, ref: int, period_end: bool, at: datetime,
                       actor: str) -> dict[str, int]:
    """Evaluate every account of one ladder with a handful of set-based statements."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Whole-table work: hash joins whatever the (possibly stale) statistics say; a nested
        # loop planned on a freshly loaded table's estimate of one row is quadratic. The
        # grouping of a million accounts and the joins with it fit in memory with 256 MB
        # (at the default 4 MB the hash aggregate spills to temporary files); for this
        # transaction only.
        session.execute(text("SET LOCAL enable_nestloop = off"))
        session.execute(text("SET LOCAL work_mem = '256MB'"))
    scratch.create(connection)
    try:
        return _recalculate(session, tenant_id, program_id, ladder_id, ladder, ref=ref,
                            period_end=period_end, at=at, actor=actor)
    finally:
        scratch.drop(connection)


def _recalculate(session: Session, tenant_id: str, program_id: str, ladder_id: str,
                 ladder: domain.Ladder, *, ref: int, period_end: bool, at: datetime,
                 actor: str) -> dict[str, int]:
    e, s = scratch.c, TierStatus
    lit_t, lit_l = literal(tenant_id, String), literal(ladder_id, String)
    fresh = not _has_statuses(session, tenant_id, ladder_id)

    # 1. Accounts with a value in the window: one GROUP BY, qualification by a CASE, the
    #    decision against the status in the same INSERT … SELECT.
    agg = _aggregate(tenant_id, program_id, ladder_id, ladder, ref)
    q = _qualified(tenant_id, program_id, ladder, agg.c.value, agg.c.account_id, ref)
    source = select(agg.c.account_id, agg.c.value, q.label("qualified")).subquery("qa")
    postgres = session.connection().dialect.name == "postgresql"
    if postgres:
        # The ladder's statuses are read whole: by a bitmap or a plain scan, never one index
        # probe per row (the plan a first recalculation's statistics, taken when the table
        # was empty, would otherwise choose for a million statuses).
        session.execute(text("SET LOCAL enable_indexscan = off"))
    holders = period_end and not fresh
    free = ladder.levels[0].threshold == 0
    counted: tuple[int, int, int, int, int] | None = None
    if fresh or holders or free:
        _insert_evaluations(session, tenant_id, ladder_id, ladder, source, ref=ref,
                            period_end=period_end, fresh=fresh)
    else:
        # Statuses exist and only the accounts with a value can move (no period end, no
        # free level): count first, without writing a row. Moves are rare here — credits
        # move members at once, in the per-event and the bulk paths — so the usual run
        # ends with this one read; only when something moved is the evaluation run again
        # to keep the movers (and only them) for the writes.
        ev = _evaluations(tenant_id, ladder_id, ladder, source, ref=ref,
                          period_end=period_end).subquery("ev")
        counted = _tally(session, ev)
        if counted[3] or counted[4]:
            cur, tgt = ev.c.current_rank, ev.c.target_rank
            session.execute(insert(scratch).from_select(SCRATCH_COLUMNS, _in_key_order(
                session, select(ev).where(_entering(cur, tgt) | _moving(cur, tgt)))))
    if postgres:
        session.execute(text("SET LOCAL enable_indexscan = on"))

    # 2. Accounts without a value that may still move: holders of a level (at a period end,
    #    when they may fall) and, when the lowest level is free, every active enrolment.
    zero = literal(0, BigInteger)
    if holders or free:
        session.execute(text("CREATE INDEX tier_scratch_account ON tier_scratch (account_id)"))
    if holders:
        holder = TierStatus.__table__.alias("holder")
        q0 = _qualified(tenant_id, program_id, ladder, zero, holder.c.account_id, ref)
        source = select(holder.c.account_id, zero.label("value"), q0.label("qualified")).where(
            holder.c.tenant_id == tenant_id, holder.c.ladder_id == ladder_id,
            holder.c.level_rank > domain.NO_LEVEL,
            ~exists().where(e.account_id == holder.c.account_id),
        ).subquery("held")
        _insert_evaluations(session, tenant_id, ladder_id, ladder, source, ref=ref,
                            period_end=period_end)
    if free:
        en = enrolment_t
        q0 = _qualified(tenant_id, program_id, ladder, zero, en.c.account_id, ref)
        source = select(en.c.account_id, zero.label("value"), q0.label("qualified")).where(
            en.c.tenant_id == tenant_id, en.c.program_id == program_id,
            en.c.status == "active",
            ~exists().where(e.account_id == en.c.account_id),
        ).subquery("enrolled")
        _insert_evaluations(session, tenant_id, ladder_id, ladder, source, ref=ref,
                            period_end=period_end, fresh=fresh)

    # The counts, read before writing: a recalculation that moves nobody (the usual repeat)
    # writes nothing and runs none of the statements below.
    evaluated, upgraded, downgraded, entering, moving = counted or _tally(session, scratch)
    first = [_entering(e.current_rank, e.target_rank)]
    moved = [_moving(e.current_rank, e.target_rank)]

    if postgres and (entering or moving):
        # The writes fire row triggers (the liability-by-tier tracking on `enrolment`) whose
        # lookups are single-row index probes: planned with nested loops off they turn into a
        # scan of their tables per row, quadratic (a first run at 100,000 members took more
        # than 15 minutes instead of seconds). Nested loops back on, and the scratch's real
        # statistics, so the set-based writes below still get hash joins where they pay.
        session.execute(text("ANALYZE tier_scratch"))
        session.execute(text("SET LOCAL enable_nestloop = on"))
    code = _code_case(ladder, e.target_rank)
    at_status, at_change = literal(at, s.updated_at.type), literal(at, TierChange.at.type)
    change_cols = ["tenant_id", "ladder_id", "account_id", "seq", "program_id", "from_level",
                   "to_level", "reason", "actor", "note", "value", "at"]
    # 3. Accounts reaching their first level: a status row at that level and its history row.
    if entering:
        session.execute(insert(s).from_select(
            ["tenant_id", "ladder_id", "account_id", "program_id", "level_code", "level_rank",
             "since", "locked", "lock_reason", "anchor_month", "version", "updated_at"],
            select(lit_t, lit_l, e.account_id, literal(program_id, String), code,
                   e.target_rank, at_status, literal(False), literal(None, String),
                   literal(ref, BigInteger), literal(1, BigInteger), at_status)
            .where(*first),
        ))
        session.execute(insert(TierChange).from_select(change_cols, select(
            lit_t, lit_l, e.account_id, literal(1, BigInteger), literal(program_id, String),
            literal(None, String), code, literal("upgrade", String), literal(actor, String),
            literal(None, String), e.value, at_change).where(*first)))

    # 4. Moves of accounts with a status: history rows, then the statuses themselves.
    if moving:
        changed = [*moved, s.tenant_id == tenant_id, s.ladder_id == ladder_id,
                   s.account_id == e.account_id]
        reason = case((e.target_rank > e.current_rank, "upgrade"), else_="downgrade")
        session.execute(insert(TierChange).from_select(change_cols, select(
            lit_t, lit_l, e.account_id, s.version + 1, literal(program_id, String),
            s.level_code, code, reason, literal(actor, String), literal(None, String),
            e.value, at_change,
        ).where(*changed)))
        session.execute(update(s).where(*changed).values(
            level_rank=e.target_rank, level_code=code, since=at, version=s.version + 1,
            updated_at=at))

    if ladder.primary and (entering or moving):
        en = enrolment_t
        # (the scratch in account order: whichever side the hash join builds, enrolments
        # are updated in account order or in their table's)
        session.execute(
            update(en)
            .where(en.c.tenant_id == tenant_id, en.c.program_id == program_id,
                   e.account_id == en.c.account_id, e.target_rank != e.current_rank,
                   (e.current_rank != NEW) | (e.target_rank > domain.NO_LEVEL))
            .values(tier=code, updated_at=at)
        )
    session.flush()
    return {"evaluated": evaluated, "upgraded": upgraded, "downgraded": downgraded}
