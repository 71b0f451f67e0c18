"""KPIs of a program over a period: members (enrolled, active, engaged), earn and burn per
unit from the ledger (issued, redeemed, expired, adjusted), redemption rate and the average
time from enrolment to first redemption. Definitions in ``docs/analytics.md``.

Everything is aggregated in the database (GROUP BY over the wallet flows and the events);
only per-unit totals and per-member first redemptions come back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from allegiance import events, members
from allegiance.analytics.common import (
    CATEGORIES,
    Period,
    Report,
    flows_query,
    program_of,
    ratio,
    units,
    value_of,
)

ENROLLED_STATUSES = ("active", "suspended", "closed")
COLUMNS = ["unit", "opening", "issued", "redeemed", "expired", "adjusted", "other", "closing",
           "redemption_rate", "cumulative_redemption_rate", "earners", "redeemers",
           "issued_value", "redeemed_value", "expired_value"]


def kpis(session: Session, tenant_id: str, program_id: str, span: Period) -> Report:
    program_of(session, tenant_id, program_id)
    f = flows_query(tenant_id, program_id, until=span.end).subquery("f")
    inside = case((f.c.at >= span.start, 1), else_=0)
    totals: dict[str, dict[tuple[str, int], int]] = {}
    for unit_id, category, phase, total in session.execute(
        select(f.c.unit_id, f.c.category, inside, func.sum(f.c.signed))
        .group_by(f.c.unit_id, f.c.category, inside)
    ):
        totals.setdefault(unit_id, {})[(category, int(phase))] = int(total or 0)
    earning = (f.c.category == "earn") & (f.c.signed > 0)
    spending = (f.c.category == "redeem") & (f.c.signed < 0)
    counts = {
        unit_id: (int(earners or 0), int(redeemers or 0))
        for unit_id, earners, redeemers in session.execute(
            select(f.c.unit_id,
                   func.count(distinct(case((earning, f.c.member)))),
                   func.count(distinct(case((spending, f.c.member)))))
            .where(f.c.at >= span.start).group_by(f.c.unit_id))
    }
    rows = []
    for unit_id, unit in sorted(units(session, tenant_id, program_id).items(),
                                key=lambda item: item[1].code):
        row = unit_flows(totals.get(unit_id, {}))
        earner_count, redeemer_count = counts.get(unit_id, (0, 0))
        rows.append({"unit": unit.code, **row, "earners": earner_count,
                     "redeemers": redeemer_count,
                     "issued_value": value_of(row["issued"], unit),
                     "redeemed_value": value_of(row["redeemed"], unit),
                     "expired_value": value_of(row["expired"], unit)})
    first = session.execute(
        select(f.c.member, func.min(f.c.at)).where(spending).group_by(f.c.member)).all()
    redeemers = set(session.scalars(
        select(f.c.member).where(spending, f.c.at >= span.start).distinct()).all())
    summary = member_kpis(session, tenant_id, program_id, span, redeemers, first)
    return Report("kpis", program_id, "Program KPIs", COLUMNS, rows, summary,
                  {"from": span.start, "to": span.end})


def unit_flows(totals: dict[tuple[str, int], int]) -> dict[str, Any]:
    """Earn and burn of one unit from its sums per (category, 1 in the period / 0 before)."""
    def sums(phase: int | None) -> dict[str, int]:
        return {c: sum(v for (k, p), v in totals.items()
                       if k == c and (phase is None or p == phase)) for c in CATEGORIES}

    now, life = sums(1), sums(None)
    opening = sum(sums(0).values())
    issued, redeemed, expired = now["earn"], -now["redeem"], -now["expire"]
    return {
        "opening": opening, "issued": issued, "redeemed": redeemed, "expired": expired,
        "adjusted": now["adjust"], "other": now["other"],
        "closing": opening + sum(now.values()),
        "redemption_rate": ratio(redeemed, issued),
        "cumulative_redemption_rate": ratio(-life["redeem"], life["earn"]),
    }


def member_kpis(session: Session, tenant_id: str, program_id: str, span: Period,
                redeemers: set[str], first: Sequence[Any]) -> dict[str, Any]:
    """Enrolled, new, active and engaged members; time to first redemption."""
    event = events.Event
    in_period = (event.tenant_id == tenant_id, event.program_id == program_id,
                 event.status == "processed", event.account_id.is_not(None),
                 event.occurred_at >= span.start, event.occurred_at < span.end)
    active = set(session.scalars(select(event.account_id).where(
        *in_period, event.kind.in_(("purchase", "activity"))).distinct()).all())
    doers = set(session.scalars(select(event.account_id).where(
        *in_period, event.kind == "activity").distinct()).all())
    enrolment = members.Enrolment
    count, new = session.execute(
        select(func.count(), func.count(case((enrolment.created_at >= span.start, 1))))
        .where(enrolment.tenant_id == tenant_id, enrolment.program_id == program_id,
               enrolment.status.in_(ENROLLED_STATUSES), enrolment.created_at < span.end)
    ).one()
    engaged = doers | redeemers
    firsts = (
        pl.DataFrame([tuple(r) for r in first], orient="row",
                     schema={"member": pl.Utf8, "first": pl.Datetime("us", "UTC")})
        .filter(pl.col("first") >= span.start)
    )
    firsts = (
        firsts.join(enrolment_times(session, tenant_id, program_id,
                                    firsts["member"].to_list()), on="member", how="inner")
        .with_columns(((pl.col("first") - pl.col("enrolled_at")).dt.total_seconds() / 86400)
                      .alias("days"))
    )
    count, new = int(count), int(new or 0)
    return {
        "enrolled": count,
        "new_enrolments": new,
        "active": len(active),
        "engaged": len(engaged),
        "active_rate": ratio(len(active), count),
        "engaged_rate": ratio(len(engaged), count),
        "first_redemptions": firsts.height,
        "avg_days_to_first_redemption": (
            None if firsts.height == 0 else float(firsts["days"].mean())  # type: ignore[arg-type]
        ),
    }


def enrolment_times(session: Session, tenant_id: str, program_id: str,
                    accounts: list[str]) -> pl.DataFrame:
    """(member, enrolled_at) of these accounts' enrolments in the program (every status), read
    for the few members that redeemed rather than for every member."""
    enrolment = members.Enrolment
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(accounts), 1000):
        rows += [tuple(r) for r in session.execute(
            select(enrolment.account_id, enrolment.created_at)
            .where(enrolment.tenant_id == tenant_id, enrolment.program_id == program_id,
                   enrolment.account_id.in_(accounts[start:start + 1000])))]
    return pl.DataFrame(rows, orient="row",
                        schema={"member": pl.Utf8, "enrolled_at": pl.Datetime("us", "UTC")})
