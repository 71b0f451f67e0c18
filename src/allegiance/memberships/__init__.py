"""Paid memberships and perks: plans with a one-time, monthly or yearly fee, free trials,
renewal, grace, lapse and cancellation (fees recorded, no payment rails), and perks unlocked by
a live plan or a tier level ("may account X use perk Y now?")."""

from allegiance.memberships.domain import PerkAnswer, State
from allegiance.memberships.models import Charge, Perk, Plan, Subscription
from allegiance.memberships.service import (
    PerkState,
    cancel,
    charges_of,
    create_perk,
    create_plan,
    end_with_enrolment,
    get_plan,
    get_subscription,
    list_perks,
    list_plans,
    perks_of,
    plan_by_code,
    record_payment,
    refresh,
    state,
    subscribe,
    subscriptions_of,
)

__all__ = [
    "Charge", "Perk", "PerkAnswer", "PerkState", "Plan", "State", "Subscription", "cancel",
    "charges_of", "create_perk", "create_plan", "end_with_enrolment", "get_plan",
    "get_subscription", "list_perks", "list_plans", "perks_of", "plan_by_code",
    "record_payment", "refresh", "state", "subscribe", "subscriptions_of",
]
