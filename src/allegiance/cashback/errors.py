"""Errors of rebates, discount schedules and next-order coupons."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


class InvalidSchedule(ValidationFailed):
    code = "invalid_schedule"


class DuplicateSchedule(Conflict):
    code = "duplicate_schedule"


class CouponNotFound(NotFound):
    code = "next_order_coupon_not_found"


class CouponUnusable(Conflict):
    code = "next_order_coupon_unusable"
