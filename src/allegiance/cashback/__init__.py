"""Cashback, rebates and discounts: volume rebate schedules (accrued pending, trued up at
period end, clawed back on returns), cumulative discount schedules, next-order coupons and
the checkout quote. Cashback rates and caps are rule effects on money units."""

from allegiance.cashback.discounts import Quote, confirm, coupons, quote
from allegiance.cashback.discounts import create_schedule as create_discount_schedule
from allegiance.cashback.models import (
    DiscountSchedule,
    NextOrderCoupon,
    RebateAccrual,
    RebateSchedule,
)
from allegiance.cashback.service import (
    accruals,
    create_schedule,
    get_schedule,
    run_all,
    run_schedule,
)

__all__ = [
    "DiscountSchedule", "NextOrderCoupon", "Quote", "RebateAccrual", "RebateSchedule",
    "accruals", "confirm", "coupons", "create_discount_schedule", "create_schedule",
    "get_schedule", "quote", "run_all", "run_schedule",
]
