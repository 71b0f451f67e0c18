"""Referrals and affiliates: codes and links, attribution window, commissions by category,
bounties and two-sided rewards, fraud checks, pending until a lock date, exact refunds."""

from allegiance.referrals.clicks import match_visitor, record_click
from allegiance.referrals.domain import email_key, tax_key
from allegiance.referrals.models import (
    Referral,
    ReferralAttributed,
    ReferralCode,
    ReferralIdentity,
    ReferralPlan,
    ReferralReward,
)
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
    sync_batch,
)

__all__ = [
    "Referral", "ReferralAttributed", "ReferralCode", "ReferralIdentity", "ReferralPlan", "ReferralReward",
    "attribute", "create_plan",
    "decide_application", "email_key", "get_code", "get_plan", "get_referral", "issue_code",
    "link", "match_visitor", "reconcile", "record_click", "reward_state", "signup", "statement",
    "sync", "sync_batch", "tax_key",
]
