"""The summary tables the reports read (migration ``0026_analytics``), what they must hold, and
the job that folds PostgreSQL's liability deltas.

The database keeps them in each writing transaction (triggers), so a report reads a few
thousand rows (liability) or one narrow row per member and day (RFM) or month (cohorts)
instead of every posting and event:

* ``liability_holding`` (+ unfolded ``liability_delta``): per program, unit, tier and credit
  day, the wallets' remaining balance and net postings (:func:`holdings`);
* ``purchase_day``: per member and day, purchases and spend net of returns, and
  ``purchase_member``: the same per member (first and last day, days, spend, first day's);
* ``member_month``: per member and month, purchases and activities.

Days and months are the program's local ones (migration ``0028_localday``): the date of
``occurred_at`` plus the UTC offset of the program's zone then (:func:`kit.zones.local_day`,
the intervals of ``zone_offset``). A program whose zone changes has them rebuilt by the
database in the same transaction.

:func:`recompute` gives every summary row from the source rows (``ledger_aging``,
``enrolment``, ``event``) so tests and reconciliation can compare; :func:`stored` reads them
in the same shape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date

from sqlalchemy import and_, func, select, text, union_all
from sqlalchemy.orm import Session

from allegiance import events, ledger, members, tenants
from allegiance.analytics.common import MEMBER_OWNERS, member_account
from allegiance.analytics.models import (
    LiabilityDelta,
    LiabilityHolding,
    MemberMonth,
    PurchaseDay,
    PurchaseMember,
)
from allegiance.kit import zones
from allegiance.kit.clock import as_utc
from allegiance.kit.db import Database

EPOCH = date(1970, 1, 1)
NO_TIER = ""

# (program, unit, tier, day) → (remaining, net)
Holdings = dict[tuple[str, str, str, int], tuple[int, int]]
# (program, member, day, currency) → (purchases, amount)
Days = dict[tuple[str, str, int, str], tuple[int, int]]
# (program, member, month) → events
Months = dict[tuple[str, str, int], int]
# (program, member) → (first day, last day, days, amount, first day's amount, currency or '*')
Members = dict[tuple[str, str], tuple[int, int, int, int, int, str]]
Summaries = tuple[Holdings, Days, Months, Members]


def holdings(session: Session, tenant_id: str,
             program_id: str) -> list[tuple[str, str, int, int, int]]:
    """(unit, tier, day, remaining, net) of the program now: the folded rows plus the deltas
    not folded yet, in one statement (one snapshot)."""
    h, d = LiabilityHolding, LiabilityDelta
    both = union_all(
        select(h.unit_id, h.tier, h.day, h.remaining, h.net)
        .where(h.tenant_id == tenant_id, h.program_id == program_id),
        select(d.unit_id, d.tier, d.day, d.remaining, d.net)
        .where(d.tenant_id == tenant_id, d.program_id == program_id),
    ).subquery("both")
    rows = session.execute(
        select(both.c.unit_id, both.c.tier, both.c.day, func.sum(both.c.remaining),
               func.sum(both.c.net))
        .group_by(both.c.unit_id, both.c.tier, both.c.day)
    ).all()
    return [(r[0], r[1], int(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows]


# --- the fold job (PostgreSQL; SQLite's triggers write liability_holding directly) ----------

_FOLD = """
WITH moved AS (
    DELETE FROM liability_delta WHERE tenant_id = :tenant AND id IN (
        SELECT id FROM liability_delta WHERE tenant_id = :tenant ORDER BY id LIMIT :batch)
    RETURNING tenant_id, program_id, unit_id, tier, day, remaining, net)
INSERT INTO liability_holding AS h (tenant_id, program_id, unit_id, tier, day, remaining, net)
SELECT tenant_id, program_id, unit_id, tier, day, SUM(remaining), SUM(net) FROM moved
GROUP BY tenant_id, program_id, unit_id, tier, day
ON CONFLICT (tenant_id, program_id, unit_id, tier, day) DO UPDATE
SET remaining = h.remaining + EXCLUDED.remaining, net = h.net + EXCLUDED.net
"""


def fold(session: Session, tenant_id: str, batch: int) -> int:
    """Move up to ``batch`` of the tenant's oldest deltas into ``liability_holding`` in one
    statement (deleted and added atomically: a report sees them before or after, never both
    or neither); the number of deltas moved."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    moved = session.execute(
        select(func.count()).select_from(
            select(LiabilityDelta.id).where(LiabilityDelta.tenant_id == tenant_id)
            .limit(batch).subquery())
    ).scalar_one()
    if moved:
        session.execute(text(_FOLD), {"tenant": tenant_id, "batch": batch})
    return int(moved)


def _no_progress(_step: str, _count: int) -> None:
    return None


def run_fold(db: Database, batch: int = 1000,
             progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    """Job ``liability-fold``: fold every tenant's deltas, ``batch × 50`` per transaction."""
    with db.read() as session:
        tenant_ids = [t for (t,) in session.execute(
            select(LiabilityDelta.tenant_id).distinct().order_by(LiabilityDelta.tenant_id))]
    folded = 0
    for tenant_id in tenant_ids:
        while True:
            with db.transaction() as session:
                moved = fold(session, tenant_id, batch * 50)
            folded += moved
            progress("deltas", moved)
            if moved < batch * 50:
                break
    return {"tenants": len(tenant_ids), "deltas_folded": folded}


# --- what the tables must hold -------------------------------------------------------------


def recompute(session: Session, tenant_id: str) -> Summaries:
    """Every summary row of the tenant from the source rows (zero rows left out)."""
    aging, account = ledger.Aging, ledger.LedgerAccount
    user, enrolment = members.User, members.Enrolment
    member = member_account(account.owner_type, account.owner_id, user.account_id)
    rows = session.execute(
        select(account.program_id, account.unit_id, func.coalesce(enrolment.tier, NO_TIER),
               aging.day, aging.remaining, aging.credits - aging.debits)
        .join(account, and_(account.tenant_id == aging.tenant_id, account.id == aging.account_id))
        .outerjoin(user, and_(user.tenant_id == account.tenant_id, user.id == account.owner_id,
                              account.owner_type == "user"))
        .outerjoin(enrolment, and_(enrolment.tenant_id == account.tenant_id,
                                   enrolment.program_id == account.program_id,
                                   enrolment.account_id == member))
        .where(aging.tenant_id == tenant_id, account.owner_type.in_(MEMBER_OWNERS))
    ).all()
    held: dict[tuple[str, str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for program_id, unit_id, tier, day, remaining, net in rows:
        sums = held[(program_id, unit_id, tier, int(day))]
        sums[0] += int(remaining)
        sums[1] += int(net)
    event = events.Event
    program = tenants.Program
    zone_of = dict(session.execute(select(program.id, program.time_zone)
                                   .where(program.tenant_id == tenant_id)).all())
    days: dict[tuple[str, str, int, str], list[int]] = defaultdict(lambda: [0, 0])
    months: dict[tuple[str, str, int], int] = defaultdict(int)
    for program_id, buyer, kind, occurred_at, currency, amount, returned in session.execute(
        select(event.program_id, event.account_id, event.kind, event.occurred_at,
               event.currency, event.amount, event.returned_amount)
        .where(event.tenant_id == tenant_id, event.status == "processed",
               event.account_id.is_not(None), event.kind.in_(("purchase", "activity")))
    ):
        account_id = str(buyer)
        on = zones.local_day(zone_of[program_id], as_utc(occurred_at))
        months[(program_id, account_id, on.year * 12 + on.month)] += 1
        if kind == "purchase":
            sums = days[(program_id, account_id, (on - EPOCH).days, currency or "")]
            sums[0] += 1
            sums[1] += int(amount) - int(returned)
    per_day = {k: (v[0], v[1]) for k, v in days.items()}
    return ({k: (v[0], v[1]) for k, v in held.items() if v != [0, 0]},
            per_day, dict(months), members_of(per_day))


def members_of(days: Days) -> Members:
    """``purchase_member`` from ``purchase_day``'s rows."""
    grouped: dict[tuple[str, str], list[tuple[int, str, int]]] = defaultdict(list)
    for (program_id, account_id, day, currency), (_, amount) in days.items():
        grouped[(program_id, account_id)].append((day, currency, amount))
    out: Members = {}
    for key, rows in grouped.items():
        first = min(day for day, _, _ in rows)
        currencies = {currency for _, currency, _ in rows}
        out[key] = (first, max(day for day, _, _ in rows), len({day for day, _, _ in rows}),
                    sum(amount for _, _, amount in rows),
                    sum(amount for day, _, amount in rows if day == first),
                    currencies.pop() if len(currencies) == 1 else "*")
    return out


def stored(session: Session, tenant_id: str) -> Summaries:
    """The summary tables of the tenant in the shape of :func:`recompute` (holdings: folded
    plus unfolded deltas; zero rows left out)."""
    h, d = LiabilityHolding, LiabilityDelta
    both = union_all(
        select(h.program_id, h.unit_id, h.tier, h.day, h.remaining, h.net)
        .where(h.tenant_id == tenant_id),
        select(d.program_id, d.unit_id, d.tier, d.day, d.remaining, d.net)
        .where(d.tenant_id == tenant_id),
    ).subquery("both")
    held: Holdings = {}
    for program_id, unit_id, tier, day, remaining, net in session.execute(
        select(both.c.program_id, both.c.unit_id, both.c.tier, both.c.day,
               func.sum(both.c.remaining), func.sum(both.c.net))
        .group_by(both.c.program_id, both.c.unit_id, both.c.tier, both.c.day)
    ):
        if int(remaining) or int(net):
            held[(program_id, unit_id, tier, int(day))] = (int(remaining), int(net))
    p, m = PurchaseDay, MemberMonth
    days: Days = {
        (r[0], r[1], int(r[2]), r[3]): (int(r[4]), int(r[5]))
        for r in session.execute(select(p.program_id, p.account_id, p.day, p.currency,
                                        p.purchases, p.amount).where(p.tenant_id == tenant_id))
    }
    months: Months = {
        (r[0], r[1], int(r[2])): int(r[3])
        for r in session.execute(select(m.program_id, m.account_id, m.month, m.events)
                                 .where(m.tenant_id == tenant_id))
    }
    q = PurchaseMember
    buyers: Members = {
        (r[0], r[1]): (int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), r[7])
        for r in session.execute(select(q.program_id, q.account_id, q.first_day, q.last_day,
                                        q.days, q.amount, q.first_amount, q.currency)
                                 .where(q.tenant_id == tenant_id))
    }
    return held, days, months, buyers

