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


class CustomRequestNotFound(NotFound):
    code = "custom_request_not_found"


class InvalidCustomRequest(ValidationFailed):
    code = "invalid_custom_request"


class NoAccountManager(Conflict):
    code = "no_account_manager"


class NotTheManager(Conflict):
    code = "not_the_manager"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class QuoteExpired(Conflict):
    code = "quote_expired"
