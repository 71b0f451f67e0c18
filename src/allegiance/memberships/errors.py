"""Errors of plans, subscriptions and perks."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class PlanNotFound(NotFound):
    code = "plan_not_found"


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class PerkNotFound(NotFound):
    code = "perk_not_found"


class InvalidPlan(ValidationFailed):
    code = "invalid_plan"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"


class NotRenewable(Conflict):
    code = "not_renewable"
