"""Uplift of participants over comparable non-participants, category penetration, target
attainment per market and ROI. Definitions and formulas in ``docs/analytics.md``.

Windows: the program's launch (or any date) splits time into a *pre* window
``[launch − L, launch)`` and a *post* window ``[launch, launch + L)`` of the same length L.
A **participant** took part in the post window (redeemed, or reported an activity); the others
are **non-participants**. Only members who bought in the pre window are compared, inside strata
of the same segment and the same size band (band of pre-window spend, by rank). Within each
stratum: DiD = (post − pre mean spend of participants) − (post − pre mean spend of
non-participants); the average effect on participants (ATT) weighs strata by participants.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from allegiance import events
from allegiance.analytics.common import (
    Period,
    Report,
    ReportInvalid,
    enrolled_members,
    instant,
    member_events,
    program_of,
    ratio,
    units,
    value_of,
    wallet_flows,
)
from allegiance.kit.money import currency_exponent

SIZE_BANDS = 4
UPLIFT_COLUMNS = ["segment", "size_band", "participants", "controls", "pre_participants",
                  "post_participants", "pre_controls", "post_controls", "did"]
NO_SEGMENT = "(none)"


def windows(launch: datetime, end: datetime) -> tuple[Period, Period]:
    post = Period(launch, end)
    return Period(launch - (end - launch), launch), post


def _spend(buys: pl.DataFrame, span: Period, name: str) -> pl.DataFrame:
    return (buys.filter((pl.col("at") >= span.start) & (pl.col("at") < span.end))
            .group_by("member").agg(pl.col("amount").sum().alias(name)))


def groups(session: Session, tenant_id: str, program_id: str, pre: Period,
           post: Period, bands: int = SIZE_BANDS) -> pl.DataFrame:
    """One row per member who bought in the pre window: segment, size band, pre and post
    spend (minor units) and whether she participated in the post window."""
    program = program_of(session, tenant_id, program_id)
    buys = member_events(session, tenant_id, program_id, kinds=("purchase",),
                         start=pre.start, end=post.end).filter(
        pl.col("currency").is_null() | (pl.col("currency") == program.base_currency))
    acts = member_events(session, tenant_id, program_id, kinds=("activity",),
                         start=post.start, end=post.end)
    flows = wallet_flows(session, tenant_id, program_id, until=post.end)
    redeemers = flows.filter((pl.col("category") == "redeem") & (pl.col("signed") < 0)
                             & (pl.col("at") >= post.start))["member"]
    takers = set(acts["member"].to_list()) | set(redeemers.to_list())
    people = enrolled_members(session, tenant_id, program_id).select("member", "segment")
    frame = (
        _spend(buys, pre, "pre")
        .join(_spend(buys, post, "post"), on="member", how="left")
        .join(people, on="member", how="left")
        .with_columns(pl.col("post").fill_null(0),
                      pl.col("segment").fill_null(NO_SEGMENT),
                      pl.col("member").is_in(list(takers)).alias("participant"))
        .sort("pre", "member")
    )
    n = frame.height
    return frame.with_columns(
        ((pl.int_range(0, n, dtype=pl.Int64) * bands) // max(n, 1) + 1).alias("size_band"))


def uplift(session: Session, tenant_id: str, program_id: str, launch: datetime,
           end: datetime, bands: int = SIZE_BANDS) -> Report:
    if bands < 1:
        raise ReportInvalid("bands must be at least 1", field="bands")
    if end <= launch:
        raise ReportInvalid("the post window must end after the launch", field="to")
    pre, post = windows(launch, end)
    frame = groups(session, tenant_id, program_id, pre, post, bands)
    strata = (
        frame.group_by("segment", "size_band", "participant")
        .agg(pl.len().alias("n"), pl.col("pre").mean(), pl.col("post").mean())
    )
    rows: list[dict[str, Any]] = []
    for segment, band in sorted({(s, b) for s, b, *_ in strata.iter_rows()}):
        cell = strata.filter((pl.col("segment") == segment) & (pl.col("size_band") == band))
        took = cell.filter(pl.col("participant"))
        other = cell.filter(~pl.col("participant"))
        if took.height == 0:
            continue
        row: dict[str, Any] = {"segment": segment, "size_band": band,
                               "participants": int(took["n"][0]),
                               "controls": int(other["n"][0]) if other.height else 0,
                               "pre_participants": float(took["pre"][0]),
                               "post_participants": float(took["post"][0]),
                               "pre_controls": None, "post_controls": None, "did": None}
        if other.height:
            row |= {"pre_controls": float(other["pre"][0]),
                    "post_controls": float(other["post"][0])}
            row["did"] = ((row["post_participants"] - row["pre_participants"])
                          - (row["post_controls"] - row["pre_controls"]))
        rows.append(row)
    matched = [r for r in rows if r["did"] is not None]
    weight = sum(r["participants"] for r in matched)
    incremental = sum(r["participants"] * r["did"] for r in matched)
    took_all = frame.filter(pl.col("participant"))
    rest = frame.filter(~pl.col("participant"))
    naive = (ratio(float(took_all["post"].mean() or 0), float(rest["post"].mean() or 0))  # type: ignore[arg-type]
             if took_all.height and rest.height else None)
    summary = {
        "participants": took_all.height, "non_participants": rest.height,
        "matched_participants": weight, "att": ratio(incremental, weight),
        "incremental_spend": incremental, "naive_ratio": naive,
        "pre": {"from": pre.start, "to": pre.end}, "post": {"from": post.start, "to": post.end},
    }
    return Report("uplift", program_id, "Uplift: difference-in-differences of spend",
                  UPLIFT_COLUMNS, rows, summary, {"launch": launch, "to": end, "bands": bands})


def penetration(session: Session, tenant_id: str, program_id: str, launch: datetime,
                end: datetime) -> Report:
    """Share of post-window spend in categories the member had not bought in the pre window,
    for participants and non-participants."""
    pre, post = windows(launch, end)
    frame = groups(session, tenant_id, program_id, pre, post)
    event, line = events.Event, events.EventLine
    rows_db = session.execute(
        select(event.account_id, event.occurred_at, line.category,
               line.amount - line.returned_amount)
        .join(line, and_(line.tenant_id == event.tenant_id, line.event_id == event.id))
        .where(event.tenant_id == tenant_id, event.program_id == program_id,
               event.kind == "purchase", event.status == "processed",
               event.account_id.is_not(None), event.occurred_at >= pre.start,
               event.occurred_at < post.end)
    ).all()
    lines = pl.DataFrame([tuple(r) for r in rows_db], orient="row", schema={
        "member": pl.Utf8, "at": pl.Datetime("us", "UTC"), "category": pl.Utf8,
        "amount": pl.Int64}).with_columns(pl.col("category").fill_null("(none)"))
    known = lines.filter(pl.col("at") < pre.end).select("member", "category").unique()
    later = (lines.filter(pl.col("at") >= post.start)
             .join(known.with_columns(pl.lit(False).alias("new")), on=["member", "category"],
                   how="left")
             .with_columns(pl.col("new").fill_null(True))
             .join(frame.select("member", "participant"), on="member", how="inner"))
    rows = []
    for name, flag in (("participants", True), ("non-participants", False)):
        mine = later.filter(pl.col("participant") == flag)
        total = int(mine["amount"].sum())
        new = int(mine.filter(pl.col("new"))["amount"].sum())
        rows.append({"group": name,
                     "members": frame.filter(pl.col("participant") == flag).height,
                     "post_spend": total, "new_category_spend": new,
                     "share": ratio(new, total)})
    return Report("penetration", program_id, "Category penetration",
                  ["group", "members", "post_spend", "new_category_spend", "share"], rows,
                  {"pre": {"from": pre.start, "to": pre.end}}, {"launch": launch, "to": end})


def targets(session: Session, tenant_id: str, program_id: str, span: Period,
            goals: dict[str, int] | None = None) -> Report:
    """Spend per market (account region) against its target: ``goals`` or the program's
    ``settings.analytics.targets`` (region → minor units for the period)."""
    program = program_of(session, tenant_id, program_id)
    goals = goals if goals is not None else dict(
        (program.settings or {}).get("analytics", {}).get("targets", {}))
    people = enrolled_members(session, tenant_id, program_id).select("member", "region")
    buys = member_events(session, tenant_id, program_id, kinds=("purchase",),
                         start=span.start, end=span.end)
    spend = (buys.join(people, on="member", how="left")
             .with_columns(pl.col("region").fill_null("(none)"))
             .group_by("region").agg(pl.col("amount").sum().alias("spend"),
                                     pl.col("member").n_unique().alias("buyers")))
    found = {r: (int(s), int(b)) for r, s, b in spend.iter_rows()}
    rows = []
    for market in sorted(set(found) | set(goals)):
        amount, buyers = found.get(market, (0, 0))
        goal = goals.get(market)
        rows.append({"market": market, "buyers": buyers, "spend": amount, "target": goal,
                     "attainment": None if not goal else amount / int(goal)})
    total_goal = sum(int(g) for g in goals.values())
    total = sum(s for s, _ in found.values())
    return Report("targets", program_id, "Target attainment per market",
                  ["market", "buyers", "spend", "target", "attainment"], rows,
                  {"spend": total, "target": total_goal or None,
                   "attainment": ratio(total, total_goal)},
                  {"from": span.start, "to": span.end})


def roi(session: Session, tenant_id: str, program_id: str, launch: datetime, end: datetime,
        *, margin: float | None = None, fixed_cost: Decimal | None = None,
        bands: int = SIZE_BANDS) -> Report:
    """ROI = (incremental margin − cost) ÷ cost, in the base currency's major units.

    Incremental margin = the uplift's incremental spend × ``margin``; cost = value of the
    points issued in the post window (× unit value) + ``fixed_cost``. Defaults come from the
    program's ``settings.analytics`` (``margin``, ``fixed_cost``)."""
    program = program_of(session, tenant_id, program_id)
    settings = (program.settings or {}).get("analytics", {})
    margin = float(margin if margin is not None else settings.get("margin", 0))
    if not 0 <= margin <= 1:
        raise ReportInvalid("margin must be between 0 and 1", field="margin")
    fixed = Decimal(str(fixed_cost if fixed_cost is not None else settings.get("fixed_cost", 0)))
    effect = uplift(session, tenant_id, program_id, launch, end, bands)
    scale = Decimal(10) ** currency_exponent(program.base_currency)
    incremental = Decimal(str(effect.summary["incremental_spend"])) / scale
    flows = wallet_flows(session, tenant_id, program_id, until=end).filter(
        (pl.col("at") >= launch) & (pl.col("category") == "earn"))
    rows = []
    points_cost = Decimal(0)
    for unit_id, unit in sorted(units(session, tenant_id, program_id).items(),
                                key=lambda item: item[1].code):
        issued = int(flows.filter(pl.col("unit_id") == unit_id)["signed"].sum())
        cost = value_of(issued, unit)
        points_cost += cost
        rows.append({"item": f"points issued ({unit.code})", "amount": issued, "value": cost})
    cost_total = points_cost + fixed
    gain = incremental * Decimal(str(margin))
    rows += [{"item": "fixed cost", "amount": None, "value": fixed},
             {"item": "incremental spend", "amount": None, "value": incremental},
             {"item": "incremental margin", "amount": None, "value": gain}]
    summary = {"cost": cost_total, "incremental_margin": gain, "margin": margin,
               "roi": None if cost_total == 0 else float((gain - cost_total) / cost_total),
               "att": effect.summary["att"]}
    return Report("roi", program_id, "Program ROI", ["item", "amount", "value"], rows, summary,
                  {"launch": launch, "to": end, "margin": margin, "fixed_cost": fixed,
                   "bands": bands})


def launch_of(value: date | datetime | str | None, span: Period) -> datetime:
    """The launch date given, or else the middle of the period."""
    return instant(value, name="launch") or span.start + (span.end - span.start) / 2
