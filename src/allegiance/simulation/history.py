"""Reading a period's history for a simulation: the processed purchases and activities of a
program (the events tables), as the columnar evaluator's lines frame; the member fields rules
read; the member liability the ledger recorded at the period's end, and what the period's
events earned as recorded. Read only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from allegiance import events, ledger, members, tenants

POLARS: dict[str, Any] = {"int": pl.Int64, "float": pl.Float64, "str": pl.Utf8,
                          "bool": pl.Boolean, "list": pl.List(pl.Utf8)}
PAGE = 50_000
AWARD_TYPES = ("points_per_amount", "points_per_item", "fixed", "percent", "commission",
               "bounty")


def _in_period(program_id: str, tenant_id: str, start: datetime, end: datetime) -> Any:
    E = events.Event
    return ((E.tenant_id == tenant_id) & (E.program_id == program_id)
            & (E.status == "processed") & E.kind.in_(("purchase", "activity"))
            & E.account_id.is_not(None) & (E.occurred_at >= start) & (E.occurred_at < end))


def _rows(session: Session, query: Any) -> Iterable[Any]:
    return session.execute(query.execution_options(yield_per=PAGE))


def load(session: Session, tenant_id: str, program_id: str, start: datetime, end: datetime,
         types: Mapping[str, str], time_zone: str) -> tuple[pl.DataFrame, dict[str, str]]:
    """The lines frame of the period's events (``_member`` is the account id) and a label
    (member number) per account."""
    E, L = events.Event, events.EventLine
    where = _in_period(program_id, tenant_id, start, end)
    ev: dict[str, list[Any]] = {k: [] for k in (
        "_id", "_member", "_at", "_kind", "_activity_type", "event.amount", "event.quantity",
        "event.currency", "event.channel", "event.reported_by", "event.external_id", "_user")}
    attribute_names = [n for n in types if n.startswith("event.attributes.")]
    attrs: dict[str, list[Any]] = {n: [] for n in attribute_names}
    query = select(E.id, E.account_id, E.occurred_at, E.kind, E.activity_type, E.amount,
                   E.quantity, E.currency, E.channel, E.reported_by, E.external_id,
                   E.attributes, E.user_id).where(where).order_by(E.occurred_at, E.id)
    for row in _rows(session, query):
        for key, value in zip(("_id", "_member", "_at", "_kind", "_activity_type",
                               "event.amount", "event.quantity", "event.currency",
                               "event.channel", "event.reported_by", "event.external_id"),
                              row[:11], strict=True):
            ev[key].append(value)
        ev["_user"].append(row[12])
        found = row[11] or {}
        for name in attribute_names:
            attrs[name].append(found.get(name[len("event.attributes."):]))
    frame = pl.DataFrame({**ev, **attrs}, schema={
        "_id": pl.Utf8, "_member": pl.Utf8, "_at": pl.Datetime("us", "UTC"), "_kind": pl.Utf8,
        "_activity_type": pl.Utf8, "event.amount": pl.Int64, "event.quantity": pl.Int64,
        "event.currency": pl.Utf8, "event.channel": pl.Utf8, "event.reported_by": pl.Utf8,
        "event.external_id": pl.Utf8, "_user": pl.Utf8,
        **{n: POLARS[types[n]] for n in attribute_names}})
    frame = frame.with_row_index("_event").with_columns(pl.col("_event").cast(pl.Int64))
    li: dict[str, list[Any]] = {k: [] for k in (
        "_id", "_line_no", "line.sku", "line.name", "line.category", "line.brand",
        "line.labels", "line.quantity", "line.unit_price", "line.amount")}
    line_query = select(L.event_id, L.line_no, L.sku, L.name, L.category, L.brand, L.labels,
                        L.quantity, L.unit_price, L.amount).join(
        E, (E.tenant_id == L.tenant_id) & (E.id == L.event_id)).where(where)
    for row in _rows(session, line_query):
        for key, value in zip(li, row, strict=True):
            li[key].append(list(value or []) if key == "line.labels" else value)
    lines = pl.DataFrame(li, schema={
        "_id": pl.Utf8, "_line_no": pl.Int64, "line.sku": pl.Utf8, "line.name": pl.Utf8,
        "line.category": pl.Utf8, "line.brand": pl.Utf8, "line.labels": pl.List(pl.Utf8),
        "line.quantity": pl.Int64, "line.unit_price": pl.Int64, "line.amount": pl.Int64})
    lines = lines.sort("_id", "_line_no").with_columns(
        pl.col("_line_no").cum_count().over("_id").cast(pl.Int64).sub(1).alias("_line"))
    counts = lines.group_by("_id").agg(pl.len().cast(pl.Int64).alias("event.line_count"))
    frame = frame.join(counts, on="_id", how="left").with_columns(
        pl.col("event.line_count").fill_null(0))
    out = frame.join(lines, on="_id", how="left").sort("_event", "_line", nulls_last=True)
    local = pl.col("_at").dt.convert_time_zone(time_zone)
    out = out.with_columns(
        pl.when(pl.col("_kind") == "activity").then(pl.col("_activity_type"))
        .otherwise(pl.col("_kind")).alias("event.type"),
        local.dt.strftime("%Y-%m-%d").alias("event.date"),
        local.dt.month().cast(pl.Int64).alias("event.month"),
        local.dt.weekday().cast(pl.Int64).alias("event.weekday"),
        local.dt.hour().cast(pl.Int64).alias("event.hour"),
    )
    member_frame, labels = _members(session, tenant_id, program_id, out, types)
    out = out.join(member_frame, on="_member", how="left")
    out = _roles(session, tenant_id, out)
    out = out.with_columns(
        ((pl.col("_at") - pl.col("_enrolled_at")).dt.total_days().clip(lower_bound=0)
         .fill_null(0).cast(pl.Int64)).alias("member.enrolled_days"),
        pl.lit([], dtype=pl.List(pl.Utf8)).alias("member.segments"),
        *[pl.lit(0, dtype=pl.Int64).alias(n) for n in types
          if n.startswith("member.counters.")],
    )
    keep = ["_event", "_member", "_at", "_kind", "_activity_type", "_line",
            *[n for n in sorted(types) if n in out.columns]]
    missing = [pl.lit(None, dtype=POLARS[types[n]]).alias(n) for n in sorted(types)
               if n not in out.columns]
    return out.select(keep).with_columns(missing), labels


def _members(session: Session, tenant_id: str, program_id: str, frame: pl.DataFrame,
             types: Mapping[str, str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """member.* fields per account (as the API reads them: the enrolment's tier now)."""
    ids = frame["_member"].unique().to_list()
    A, En = members.Account, members.Enrolment
    wanted = [n for n in types if n.startswith("member.attributes.")]
    cols: dict[str, list[Any]] = {k: [] for k in ("_member", "member.region", "member.tier",
                                                  "_enrolled_at", *wanted)}
    labels: dict[str, str] = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        enrolments = {a: (t, c) for a, t, c in session.execute(
            select(En.account_id, En.tier, En.created_at).where(
                En.tenant_id == tenant_id, En.program_id == program_id,
                En.account_id.in_(part)))}
        for account_id, number, region, attributes in session.execute(
                select(A.id, A.member_number, A.region, A.attributes).where(
                    A.tenant_id == tenant_id, A.id.in_(part))):
            tier, joined = enrolments.get(account_id, (None, None))
            labels[account_id] = number
            cols["_member"].append(account_id)
            cols["member.region"].append(region)
            cols["member.tier"].append(tier)
            cols["_enrolled_at"].append(joined)
            for name in wanted:
                cols[name].append((attributes or {}).get(name[len("member.attributes."):]))
    out = pl.DataFrame(cols, schema={
        "_member": pl.Utf8, "member.region": pl.Utf8, "member.tier": pl.Utf8,
        "_enrolled_at": pl.Datetime("us", "UTC"), **{n: POLARS[types[n]] for n in wanted}})
    return out.with_columns(
        pl.col("member.region").str.split("-").list.first().alias("member.country")), labels


def _roles(session: Session, tenant_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    ids = [u for u in frame["_user"].unique().to_list() if u is not None]
    roles: dict[str, str] = {}
    for chunk in range(0, len(ids), 500):
        U = members.User
        roles.update(dict(session.execute(select(U.id, U.role).where(
            U.tenant_id == tenant_id, U.id.in_(ids[chunk:chunk + 500]))).tuples().all()))
    role_frame = pl.DataFrame({"_user": list(roles), "member.role": list(roles.values())},
                              schema={"_user": pl.Utf8, "member.role": pl.Utf8})
    return frame.join(role_frame, on="_user", how="left")


def liability_at(session: Session, tenant_id: str, program_id: str,
                 at: datetime) -> dict[str, int]:
    """Member liability per unit code at ``at``: wallet credits minus debits of the entries
    in force before it. An entry an event caused counts at the event's time (an import of
    last year's sales posts today what was earned last year); others at their effective
    time."""
    P, J, A, E = ledger.Posting, ledger.JournalEntry, ledger.LedgerAccount, events.Event
    signed = case((P.side == "C", P.amount), else_=-P.amount)
    when = func.coalesce(E.occurred_at, J.effective_at)
    rows = session.execute(
        select(A.unit_id, func.coalesce(func.sum(signed), 0))
        .select_from(P)
        .join(J, (J.tenant_id == P.tenant_id) & (J.id == P.entry_id))
        .join(A, (A.tenant_id == P.tenant_id) & (A.id == P.account_id))
        .outerjoin(E, (J.source_type == "event") & (E.tenant_id == J.tenant_id)
                   & (E.id == J.source_id))
        .where(P.tenant_id == tenant_id, A.program_id == program_id,
               A.owner_type.in_(("account", "user")), A.purpose == "wallet", when < at)
        .group_by(A.unit_id)).all()
    return {_unit_code(session, tenant_id, unit_id): int(total) for unit_id, total in rows}


def recorded_awards(session: Session, tenant_id: str, program_id: str, start: datetime,
                    end: datetime) -> dict[str, int]:
    """What the period's events earned per unit, as recorded (net of reversals)."""
    E, W = events.Event, events.EventAward
    rows = session.execute(
        select(W.unit_code, func.coalesce(func.sum(W.amount - W.reversed_amount), 0))
        .join(E, (E.tenant_id == W.tenant_id) & (E.id == W.event_id))
        .where(_in_period(program_id, tenant_id, start, end), W.type.in_(AWARD_TYPES),
               W.unit_code.is_not(None), W.entry_id.is_not(None))
        .group_by(W.unit_code)).all()
    return {str(code): int(total) for code, total in rows}


def _unit_code(session: Session, tenant_id: str, unit_id: str) -> str:
    return tenants.get_unit(session, tenant_id, unit_id).code

