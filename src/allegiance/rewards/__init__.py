"""The rewards catalogue and redemptions: the public surface other features use."""

from allegiance.rewards.codes import (
    coupon_reward,
    issue_coupon,
    use_coupon,
    validate_coupon,
    void_coupon,
)
from allegiance.rewards.models import Redemption, Reward, RewardCode
from allegiance.rewards.service import (
    add_codes,
    approve,
    cancel,
    create_reward,
    free_codes,
    fulfil,
    get_redemption,
    get_reward,
    list_redemptions,
    list_rewards,
    redeem,
    reject,
    update_reward,
)
from allegiance.rewards.shipping import update_shipping

__all__ = [
    "Redemption", "Reward", "RewardCode", "add_codes", "approve", "cancel", "coupon_reward",
    "create_reward", "free_codes", "fulfil", "get_redemption", "get_reward", "issue_coupon",
    "list_redemptions", "list_rewards", "redeem", "reject", "update_reward", "update_shipping",
    "use_coupon", "validate_coupon", "void_coupon",
]
