"""Cumulative discount schedules and next-order coupons, with the quote a checkout calls.

The discount of an order is the bracket reached by the member's net purchase volume in the
schedule's period *before* this order; a next-order coupon (single use, with an expiry) is
issued when an order of at least ``next_order_min_amount`` is confirmed, once per order.
Quotes write nothing; confirming an order uses the coupon exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, events, members, tenants
from allegiance.cashback import domain
from allegiance.cashback.errors import (
    CouponNotFound,
    CouponUnusable,
    DuplicateSchedule,
    InvalidSchedule,
    ScheduleNotFound,
)
from allegiance.cashback.models import DiscountSchedule, NextOrderCoupon
from allegiance.kit import clock
from allegiance.kit.db import add_unique, is_unique_violation
from allegiance.kit.ids import new_id


def create_schedule(session: Session, tenant_id: str, program_id: str, *, code: str,
                    name: str, period: str, brackets: list[dict[str, object]],
                    next_order_percent: str | None = None, next_order_min_amount: int = 0,
                    next_order_valid_days: int | None = None, actor: str) -> DiscountSchedule:
    tenants.get_program(session, tenant_id, program_id)
    if period not in domain.DISCOUNT_PERIODS:
        raise InvalidSchedule(f"period must be one of {', '.join(domain.DISCOUNT_PERIODS)}",
                              field="period")
    try:
        domain.parse_discount_brackets(brackets)
        if next_order_percent is not None:
            domain.parse_percent(next_order_percent, "next_order_percent")
    except domain.ScheduleError as exc:
        raise InvalidSchedule(str(exc), field=exc.field) from exc
    if next_order_min_amount < 0 or (next_order_valid_days is not None
                                     and next_order_valid_days <= 0):
        raise InvalidSchedule("next-order minimum and validity must be positive",
                              field="next_order_valid_days")
    row = DiscountSchedule(
        tenant_id=tenant_id, id=new_id("dsc"), program_id=program_id, code=code, name=name,
        period=period, brackets=list(brackets), next_order_percent=next_order_percent,
        next_order_min_amount=next_order_min_amount,
        next_order_valid_days=next_order_valid_days, active=True, created_at=clock.now())
    add_unique(session, row, DuplicateSchedule(f"discount schedule {code} exists", field="code"))
    audit.record(session, tenant_id, actor=actor, action="discount_schedule.create",
                 object_type="discount_schedule", object_id=row.id,
                 after={"code": code, "period": period, "brackets": list(brackets)})
    return row


def get_schedule(session: Session, tenant_id: str, schedule_id: str) -> DiscountSchedule:
    row = session.get(DiscountSchedule, (tenant_id, schedule_id))
    if row is None:
        raise ScheduleNotFound(f"discount schedule {schedule_id} not found",
                               field="schedule_id")
    return row


@dataclass(frozen=True)
class Quote:
    schedule_id: str | None
    volume: int
    percent: str
    discount: int
    coupon_code: str | None
    coupon_percent: str | None
    coupon_discount: int
    total_discount: int
    payable: int


def _coupon(session: Session, tenant_id: str, code: str, account_id: str,
            program_id: str, *, lock: bool = False) -> NextOrderCoupon:
    query = select(NextOrderCoupon).where(NextOrderCoupon.tenant_id == tenant_id,
                                          NextOrderCoupon.code == code.strip().upper())
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).first()
    if row is None or row.account_id != account_id \
            or get_schedule(session, tenant_id, row.schedule_id).program_id != program_id:
        raise CouponNotFound("no such coupon for this member", field="coupon_code")
    if row.used_at is not None:
        raise CouponUnusable("the coupon has been used", field="coupon_code")
    if row.expires_at is not None and row.expires_at <= clock.now():
        raise CouponUnusable("the coupon has expired", field="coupon_code")
    return row


def quote(session: Session, tenant_id: str, program_id: str, *, account_id: str, amount: int,
          coupon_code: str | None = None) -> Quote:
    """The discount an order of ``amount`` gets now: the best active schedule's bracket,
    then a next-order coupon on what is left. Writes nothing."""
    program = tenants.get_program(session, tenant_id, program_id)
    members.get_account(session, tenant_id, account_id)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidSchedule("amount must be a whole number >= 0", field="amount")
    now = clock.now()
    best: tuple[int, str | None, int, domain.Bracket | None] = (0, None, 0, None)
    schedules = session.scalars(select(DiscountSchedule).where(
        DiscountSchedule.tenant_id == tenant_id, DiscountSchedule.program_id == program_id,
        DiscountSchedule.active.is_(True)).order_by(DiscountSchedule.id))
    for schedule in schedules:
        start: datetime | None = None
        end: datetime | None = None
        if schedule.period != "lifetime":
            start, end = domain.period_bounds(schedule.period, now, program.time_zone)
        volume = events.purchase_volume(session, tenant_id, program_id, start, end,
                                        account_ids=[account_id]).get(account_id, 0)
        bracket = domain.discount_rate(domain.parse_discount_brackets(schedule.brackets),
                                       volume)
        discount = 0 if bracket is None else domain.apply_rate(amount, bracket.num,
                                                               bracket.den)
        if best[1] is None or discount > best[0]:
            best = (discount, schedule.id, volume, bracket)
    discount, schedule_id, volume, bracket = best
    coupon_percent = None
    coupon_discount = 0
    if coupon_code:
        coupon = _coupon(session, tenant_id, coupon_code, account_id, program_id)
        num, den = domain.parse_percent(coupon.percent, "coupon_code")
        coupon_percent = coupon.percent
        coupon_discount = domain.apply_rate(amount - discount, num, den)
    percent = "0" if bracket is None else domain.percent_text(bracket.num, bracket.den)
    total = discount + coupon_discount
    return Quote(schedule_id=schedule_id, volume=volume, percent=percent, discount=discount,
                 coupon_code=coupon_code.strip().upper() if coupon_code else None,
                 coupon_percent=coupon_percent, coupon_discount=coupon_discount,
                 total_discount=total, payable=amount - total)


def confirm(session: Session, tenant_id: str, program_id: str, *, account_id: str,
            order_id: str, amount: int, coupon_code: str | None = None,
            actor: str) -> tuple[Quote, NextOrderCoupon | None]:
    """A checkout places the order: its coupon is used (once), and each schedule with a
    next-order offer issues a coupon for the next order (once per order id)."""
    result = quote(session, tenant_id, program_id, account_id=account_id, amount=amount,
                   coupon_code=coupon_code)
    now = clock.now()
    if coupon_code:
        coupon = _coupon(session, tenant_id, coupon_code, account_id, program_id, lock=True)
        done = session.execute(
            update(NextOrderCoupon)
            .where(NextOrderCoupon.tenant_id == tenant_id, NextOrderCoupon.id == coupon.id,
                   NextOrderCoupon.used_at.is_(None))
            .values(used_at=now, used_for_order=order_id)
            .execution_options(synchronize_session=False))
        if getattr(done, "rowcount", 0) != 1:
            raise CouponUnusable("the coupon has been used", field="coupon_code")
        audit.record(session, tenant_id, actor=actor, action="next_order_coupon.use",
                     object_type="next_order_coupon", object_id=coupon.id,
                     after={"order_id": order_id})
    issued = None
    schedules = session.scalars(select(DiscountSchedule).where(
        DiscountSchedule.tenant_id == tenant_id, DiscountSchedule.program_id == program_id,
        DiscountSchedule.active.is_(True), DiscountSchedule.next_order_percent.is_not(None))
        .order_by(DiscountSchedule.id))
    for schedule in list(schedules):
        if amount < schedule.next_order_min_amount:
            continue
        issued = _issue(session, schedule, account_id, order_id, now) or issued
    return result, issued


def _issue(session: Session, schedule: DiscountSchedule, account_id: str, order_id: str,
           now: datetime) -> NextOrderCoupon | None:
    tenant_id = schedule.tenant_id
    existing = session.scalars(select(NextOrderCoupon).where(
        NextOrderCoupon.tenant_id == tenant_id, NextOrderCoupon.schedule_id == schedule.id,
        NextOrderCoupon.issued_for_order == order_id)).first()
    if existing is not None:
        return existing
    assert schedule.next_order_percent is not None
    expires = None if schedule.next_order_valid_days is None \
        else now + timedelta(days=schedule.next_order_valid_days)
    for _ in range(10):
        row = NextOrderCoupon(
            tenant_id=tenant_id, id=new_id("noc"), schedule_id=schedule.id,
            account_id=account_id, code=domain.new_coupon_code(),
            percent=schedule.next_order_percent, issued_for_order=order_id, issued_at=now,
            expires_at=expires, used_at=None, used_for_order=None)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            continue
        return row
    return None


def coupons(session: Session, tenant_id: str, account_id: str,
            program_id: str | None = None) -> list[NextOrderCoupon]:
    if program_id is not None:  # another tenant's program or account: not found
        tenants.get_program(session, tenant_id, program_id)
    members.get_account(session, tenant_id, account_id)
    return list(session.scalars(select(NextOrderCoupon).where(
        NextOrderCoupon.tenant_id == tenant_id, NextOrderCoupon.account_id == account_id)
        .order_by(NextOrderCoupon.issued_at, NextOrderCoupon.id)))
