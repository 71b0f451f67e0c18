"""Leaderboards per program, period and metric, ranked in one query over the board totals of
the current period (or the daily tallies of an older one); ties share a rank (competition 1, 1, 3 by default, or dense 1, 1, 2); accounts that
opted out are left out and the others close up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import members, tenants
from allegiance.engagement import domain, running
from allegiance.engagement import repository as repo
from allegiance.engagement.errors import InvalidLeaderboard
from allegiance.engagement.models import BoardTotal, LeaderboardOptOut, Tally
from allegiance.kit import clock
from allegiance.kit.db import is_unique_violation

METRICS = {"points_earned": "points", "sales": "sales", "purchases": "purchases",
           "activities": "activities", "challenges": "challenges", "claims": "claims"}


@dataclass(frozen=True)
class Standing:
    account_id: str
    name: str
    score: int
    rank: int


@dataclass(frozen=True)
class Board:
    metric: str
    period: str
    label: str
    ranking: str
    entries: list[Standing]
    total: int
    me: Standing | None


def _days(period: str, at: datetime, time_zone: str) -> tuple[int, int] | None:
    if period == "all":
        return None
    index = domain.period_index(period, at, time_zone)
    return (domain.period_start(period, index).toordinal(),
            domain.period_start(period, index + 1).toordinal())


def _grouped(session: Session, tenant_id: str, program_id: str, metric: str, period: str,
             at: datetime, time_zone: str) -> Any:
    """(account, score > 0) over the period holding ``at``, without opted-out accounts: the
    board totals of that period (one row per account) while no account has moved on to a
    later period — always so for the current one — else one grouped pass over the tallies."""
    days = _days(period, at, time_zone)
    opted_out = select(LeaderboardOptOut.account_id).where(
        LeaderboardOptOut.tenant_id == tenant_id, LeaderboardOptOut.program_id == program_id)
    if period in running.BOARD_KINDS:
        index = domain.period_index(period, at, time_zone)
        mine = (BoardTotal.tenant_id == tenant_id, BoardTotal.program_id == program_id,
                BoardTotal.kind == period)
        ahead = session.scalar(select(BoardTotal.account_id).where(
            *mine, BoardTotal.period_index > index).limit(1))
        if ahead is None:
            score = getattr(BoardTotal, METRICS[metric])
            return select(BoardTotal.account_id.label("account_id"), score.label("score")).where(
                *mine, BoardTotal.period_index == index, score > 0,
                BoardTotal.account_id.not_in(opted_out))
    total = func.sum(getattr(Tally, METRICS[metric]))
    query = select(Tally.account_id.label("account_id"), total.label("score")).where(
        Tally.tenant_id == tenant_id, Tally.program_id == program_id,
        Tally.account_id.not_in(opted_out))
    if days is not None:
        query = query.where(Tally.day >= days[0], Tally.day < days[1])
    return query.group_by(Tally.account_id).having(total > 0)


def scores(session: Session, tenant_id: str, program_id: str, metric: str, period: str,
           at: datetime, time_zone: str) -> list[tuple[str, int]]:
    """Every (account, score > 0) of the period (for exports and tests)."""
    board = _grouped(session, tenant_id, program_id, metric, period, at,
                     time_zone).subquery("board")
    return [(str(a), int(v)) for a, v in session.execute(select(board.c.account_id,
                                                                board.c.score))]


def top(session: Session, tenant_id: str, program_id: str, metric: str, period: str,
        at: datetime, time_zone: str, ranking: str, limit: int,
        account_id: str | None = None) -> tuple[list[tuple[str, int, int]], int,
                                                 tuple[str, int, int] | None]:
    """The first ``limit`` (account, score, rank), how many are ranked, and where
    ``account_id`` stands — one statement over the board grouped once (a materialised CTE),
    sorted in the database. Ranks of a prefix of the order depend only on that prefix, so
    they are computed from the rows returned; the account's rank is 1 + the scores (distinct
    scores for ``dense``) above its own."""
    board = _grouped(session, tenant_id, program_id, metric, period, at, time_zone).cte(
        "board").prefix_with("MATERIALIZED")
    first = select(board.c.account_id, board.c.score).order_by(
        board.c.score.desc(), board.c.account_id).limit(limit).subquery("first")
    total = select(func.count()).select_from(board).scalar_subquery()
    columns: list[Any] = [first.c.account_id, first.c.score, total]
    if account_id is not None:
        mine = select(board.c.score).where(board.c.account_id == account_id).scalar_subquery()
        counted = func.count() if ranking == "competition" else func.count(
            board.c.score.distinct())
        columns += [mine, select(counted).where(board.c.score > mine).scalar_subquery()]
    rows = session.execute(select(*columns).order_by(first.c.score.desc(),
                                                     first.c.account_id)).all()
    ranked = domain.rank([(str(r[0]), int(r[1])) for r in rows], ranking)
    me = None
    if account_id is not None and rows and rows[0][3] is not None:
        me = (account_id, int(rows[0][3]), int(rows[0][4]) + 1)
    return ranked, int(rows[0][2]) if rows else 0, me


def leaderboard(session: Session, tenant_id: str, program_id: str, *, metric: str,
                period: str, at: datetime | None = None, ranking: str = "competition",
                limit: int = 10, account_id: str | None = None) -> Board:
    """The top ``limit`` of the period holding ``at`` (default now) in the program's time
    zone, and where ``account_id`` stands (None if it has no score or opted out)."""
    program = tenants.get_program(session, tenant_id, program_id)
    if metric not in METRICS:
        raise InvalidLeaderboard(f"metric must be one of {', '.join(METRICS)}", field="metric")
    if period not in domain.PERIODS:
        raise InvalidLeaderboard(f"period must be one of {', '.join(domain.PERIODS)}",
                                 field="period")
    if ranking not in domain.RANKINGS:
        raise InvalidLeaderboard("ranking must be competition or dense", field="ranking")
    when = at or clock.now()
    tz = program.time_zone
    shown, total, mine = top(session, tenant_id, program_id, metric, period, when, tz,
                             ranking, limit, account_id)
    wanted = {r[0] for r in shown} | ({mine[0]} if mine else set())
    names = dict(session.execute(select(members.Account.id, members.Account.name).where(
        members.Account.tenant_id == tenant_id, members.Account.id.in_(sorted(wanted)))).all())
    index = domain.period_index(period, when, tz)
    return Board(
        metric=metric, period=period, label=domain.period_label(period, index),
        ranking=ranking, entries=[Standing(a, names[a], s, r) for a, s, r in shown],
        total=total, me=Standing(mine[0], names[mine[0]], mine[1], mine[2]) if mine
        else None)


def count_claim(session: Session, tenant_id: str, program_id: str, account_id: str,
                at: datetime) -> None:
    """An approved partner sales claim counts 1 on the ``claims`` metric, on the local day of
    its invoice date (the day its purchase event is dated), in the approval's transaction."""
    program = tenants.get_program(session, tenant_id, program_id)
    repo.add_tally(session, tenant_id, program_id, account_id, at, program.time_zone, claims=1)


def set_opt_out(session: Session, tenant_id: str, program_id: str, account_id: str,
                opted_out: bool) -> bool:
    tenants.get_program(session, tenant_id, program_id)
    members.get_account(session, tenant_id, account_id)
    row = session.get(LeaderboardOptOut, (tenant_id, program_id, account_id))
    if opted_out and row is None:
        try:
            with session.begin_nested():
                session.add(LeaderboardOptOut(tenant_id=tenant_id, program_id=program_id,
                                              account_id=account_id, created_at=clock.now()))
                session.flush()
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
    elif not opted_out and row is not None:
        session.delete(row)
        session.flush()
    return opted_out


def is_opted_out(session: Session, tenant_id: str, program_id: str, account_id: str) -> bool:
    return session.get(LeaderboardOptOut, (tenant_id, program_id, account_id)) is not None

