"""What every report shares: the report shape, periods, and the set-based reads of the ledger's
member wallets and of the program's events.

The reads are single SELECTs (joins, no per-member round trips) whose rows go into Polars
frames; every computation after that is columnar.

Wallet flows: each posting to a member wallet (``ledger_account.purpose = 'wallet'``, owned by
an account or a user) gets a **category** from the kind of its journal entry. A reversal takes
the kind of the entry it reverses, so a refunded redemption lowers "redeem" and a reversed earn
lowers "earn":

======================  =========
entry kind              category
======================  =========
earn, return            earn
redeem, redemption      redeem
expiry                  expire
adjustment              adjust
anything else           other (transfers, merges)
======================  =========
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import polars as pl
from sqlalchemy import Select, and_, case, func, literal, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from allegiance import events, ledger, members, tenants
from allegiance.kit import zones
from allegiance.kit.errors import ValidationFailed

CATEGORIES = ("earn", "redeem", "expire", "adjust", "other")
MEMBER_OWNERS = ("account", "user")


class ReportInvalid(ValidationFailed):
    code = "report_invalid"


@dataclass
class Report:
    """A report: rows with the same columns (a table), a summary, and its parameters."""

    kind: str
    program_id: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "program_id": self.program_id, "title": self.title,
            "parameters": jsonable(self.parameters), "columns": list(self.columns),
            "rows": [jsonable(r) for r in self.rows], "summary": jsonable(self.summary),
        }


def jsonable(value: Any) -> Any:
    """Decimals as exact strings, datetimes and dates in ISO 8601, floats rounded to 6 places."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return None if value != value else round(value, 6)
    return value


def decimal_text(value: Decimal) -> str:
    """Exact, without trailing zeros beyond the cents: 0.4000000000 -> "0.40"."""
    text = format(value, "f")
    if "." not in text:
        return text + ".00"
    whole, fraction = text.split(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction.ljust(2, '0')}"


# ---------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True)
class Period:
    """A half-open interval ``[start, end)`` of UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ReportInvalid("the period must end after it starts", field="to")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def instant(value: date | datetime | str | None, *, end_of_day: bool = False,
            name: str = "date", time_zone: str = "UTC") -> datetime | None:
    """A UTC instant from a date (its midnight in ``time_zone``, or the next midnight with
    ``end_of_day``), a datetime or an ISO string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed: date | datetime = (
                datetime.fromisoformat(value) if "T" in value or " " in value
                else date.fromisoformat(value)
            )
        except ValueError as exc:
            raise ReportInvalid(f"{name} must be an ISO date: {value!r}", field=name) from exc
        value = parsed
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if time_zone != "UTC":
        return zones.day_start(time_zone, value + timedelta(days=1) if end_of_day else value)
    moment = datetime.combine(value, time(0), tzinfo=UTC)
    return moment + timedelta(days=1) if end_of_day else moment


def period(start: date | datetime | str | None, end: date | datetime | str | None,
           now: datetime, time_zone: str = "UTC") -> Period:
    """``--from``/``--to`` as dates (both inclusive days of ``time_zone``); defaults: the last
    365 days."""
    stop = instant(end, end_of_day=True, name="to", time_zone=time_zone) or now
    begin = instant(start, name="from", time_zone=time_zone) or stop - timedelta(days=365)
    return Period(begin, stop)


def month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def months_between(first: datetime, later: datetime) -> int:
    return (later.year - first.year) * 12 + later.month - first.month


# ---------------------------------------------------------------------------------------------
# Set-based reads


def member_account(owner_type: Any, owner_id: Any, user_account: Any) -> ColumnElement[Any]:
    """The member account behind a wallet owner (a user's wallet counts for its account)."""
    return case((owner_type == "account", owner_id), else_=user_account)


def category_of(kind: Any) -> ColumnElement[str]:
    return case(
        (kind.in_(("earn", "return")), literal("earn")),
        (kind.in_(("redeem", "redemption")), literal("redeem")),
        (kind == "expiry", literal("expire")),
        (kind == "adjustment", literal("adjust")),
        else_=literal("other"),
    )


FLOW_SCHEMA: dict[str, Any] = {
    "wallet": pl.Utf8, "member": pl.Utf8, "unit_id": pl.Utf8, "at": pl.Datetime("us", "UTC"),
    "seq": pl.Int64, "line_no": pl.Int64, "signed": pl.Int64, "category": pl.Utf8,
}


def flows_query(tenant_id: str, program_id: str, *, until: datetime | None = None) -> Select[
        Any]:
    """The SELECT of every posting to the program's member wallets (effective before
    ``until``): wallet, member, unit_id, at, seq, line_no, signed (credit +, debit −),
    category. Reports aggregate it in SQL or read it whole (``wallet_flows``)."""
    entry = ledger.JournalEntry
    posting = ledger.Posting
    account = ledger.LedgerAccount
    user = members.User
    original = aliased(ledger.JournalEntry)
    kind = case((entry.kind == "reversal", func.coalesce(original.kind, entry.kind)),
                else_=entry.kind)
    query = (
        select(
            posting.account_id.label("wallet"),
            member_account(account.owner_type, account.owner_id, user.account_id)
            .label("member"),
            posting.unit_id.label("unit_id"), entry.effective_at.label("at"),
            entry.seq.label("seq"), posting.line_no.label("line_no"),
            case((posting.side == "C", posting.amount), else_=-posting.amount).label("signed"),
            category_of(kind).label("category"),
        )
        .join(entry, and_(entry.tenant_id == posting.tenant_id, entry.id == posting.entry_id))
        .join(account, and_(account.tenant_id == posting.tenant_id,
                            account.id == posting.account_id))
        .outerjoin(original, and_(original.tenant_id == entry.tenant_id,
                                  original.id == entry.reverses_entry_id))
        .outerjoin(user, and_(user.tenant_id == account.tenant_id, user.id == account.owner_id,
                              account.owner_type == "user"))
        .where(posting.tenant_id == tenant_id, account.program_id == program_id,
               account.purpose == "wallet", account.owner_type.in_(MEMBER_OWNERS))
    )
    if until is not None:
        query = query.where(entry.effective_at < until)
    return query


def wallet_flows(session: Session, tenant_id: str, program_id: str, *,
                 until: datetime | None = None) -> pl.DataFrame:
    """``flows_query`` as a Polars frame (``FLOW_SCHEMA``)."""
    rows = session.execute(flows_query(tenant_id, program_id, until=until)).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=FLOW_SCHEMA, orient="row")


def units(session: Session, tenant_id: str, program_id: str) -> dict[str, tenants.Unit]:
    return {u.id: u for u in tenants.list_units(session, tenant_id, program_id)}


_EVENT_SCHEMA: dict[str, Any] = {
    "event_id": pl.Utf8, "member": pl.Utf8, "kind": pl.Utf8, "activity_type": pl.Utf8,
    "at": pl.Datetime("us", "UTC"), "amount": pl.Int64, "currency": pl.Utf8,
}


def member_events(session: Session, tenant_id: str, program_id: str, *,
                  kinds: tuple[str, ...] = ("purchase", "activity"),
                  start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
    """The program's processed events of ``kinds`` with a member, as a frame. ``amount`` is
    net of returns (minor units)."""
    event = events.Event
    query = select(
        event.id, event.account_id, event.kind, event.activity_type, event.occurred_at,
        event.amount - event.returned_amount, event.currency,
    ).where(event.tenant_id == tenant_id, event.program_id == program_id,
            event.status == "processed", event.account_id.is_not(None), event.kind.in_(kinds))
    if start is not None:
        query = query.where(event.occurred_at >= start)
    if end is not None:
        query = query.where(event.occurred_at < end)
    rows = session.execute(query).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=_EVENT_SCHEMA, orient="row")


_MEMBER_SCHEMA: dict[str, Any] = {
    "member": pl.Utf8, "enrolled_at": pl.Datetime("us", "UTC"), "status": pl.Utf8,
    "tier": pl.Utf8, "region": pl.Utf8, "segment": pl.Utf8,
}


def enrolled_members(session: Session, tenant_id: str, program_id: str) -> pl.DataFrame:
    """The program's enrolments (every status) with tier, region and segment of the account."""
    enrolment = members.Enrolment
    account = members.Account
    rows = session.execute(
        select(enrolment.account_id, enrolment.created_at, enrolment.status, enrolment.tier,
               account.region, account.attributes)
        .join(account, and_(account.tenant_id == enrolment.tenant_id,
                            account.id == enrolment.account_id))
        .where(enrolment.tenant_id == tenant_id, enrolment.program_id == program_id)
    ).all()
    return pl.DataFrame(
        [(r[0], r[1], r[2], r[3], r[4], segment_of(r[5])) for r in rows],
        schema=_MEMBER_SCHEMA, orient="row",
    )


def segment_of(attributes: dict[str, Any] | None) -> str | None:
    """An account's segment: its ``segment`` attribute (the one reward eligibility uses)."""
    value = (attributes or {}).get("segment")
    return None if value is None else str(value)


def program_of(session: Session, tenant_id: str, program_id: str) -> tenants.Program:
    return tenants.get_program(session, tenant_id, program_id)


def value_of(amount: int, unit: tenants.Unit) -> Decimal:
    """Exact value in the base currency's major units: amount × the unit's value."""
    return Decimal(amount) * Decimal(unit.value_in_base)


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator
