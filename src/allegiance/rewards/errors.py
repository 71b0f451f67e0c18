"""Errors of the rewards catalogue, redemptions and coupons."""

from __future__ import annotations

from allegiance.kit.errors import AllegianceError, Conflict, NotFound, ValidationFailed


class RewardNotFound(NotFound):
    code = "reward_not_found"


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"


class CouponNotFound(NotFound):
    code = "coupon_not_found"


class DuplicateReward(Conflict):
    code = "duplicate_reward"


class OutOfStock(Conflict):
    code = "out_of_stock"


class CodesExhausted(Conflict):
    code = "codes_exhausted"


class LimitReached(Conflict):
    code = "limit_reached"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class CouponUsed(Conflict):
    code = "coupon_used"


class CouponExpired(Conflict):
    code = "coupon_expired"


class BelowMinimum(ValidationFailed):
    code = "below_minimum"


class InvalidReward(ValidationFailed):
    code = "invalid_reward"


class RewardRetired(Conflict):
    code = "reward_retired"


class RewardUnavailable(Conflict):
    code = "reward_unavailable"


class RegionNotEligible(ValidationFailed):
    code = "region_not_eligible"


class SegmentNotEligible(ValidationFailed):
    code = "segment_not_eligible"


class TierNotEligible(ValidationFailed):
    code = "tier_not_eligible"


INELIGIBLE: dict[str, type[AllegianceError]] = {
    "reward_retired": RewardRetired,
    "reward_unavailable": RewardUnavailable,
    "region_not_eligible": RegionNotEligible,
    "segment_not_eligible": SegmentNotEligible,
    "tier_not_eligible": TierNotEligible,
}
