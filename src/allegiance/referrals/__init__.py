"""Referrals and affiliates: codes and links, attribution window, commissions by category,
bounties and two-sided rewards, fraud checks, pending until a lock date, exact refunds."""

from allegiance.referrals.domain import email_key, tax_key
from allegiance.referrals.models import Referral, ReferralCode, ReferralPlan, ReferralReward
from allegiance.referrals.service import (
    attribute,
    create_plan,
    decide_application,
    get_code,
    get_plan,
    get_referral,
    issue_code,
    link,
    reconcile,
    reward_state,
    signup,
    statement,
    sync,
)

__all__ = [
    "Referral", "ReferralCode", "ReferralPlan", "ReferralReward", "attribute", "create_plan",
    "decide_application", "email_key", "get_code", "get_plan", "get_referral", "issue_code",
    "link", "reconcile", "reward_state", "signup", "statement", "sync", "tax_key",
]
