"""Errors of referrals and affiliates."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class PlanNotFound(NotFound):
    code = "referral_plan_not_found"


class CodeNotFound(NotFound):
    code = "referral_code_not_found"


class ReferralNotFound(NotFound):
    code = "referral_not_found"


class InvalidPlan(ValidationFailed):
    code = "invalid_referral_plan"


class InvalidReferral(ValidationFailed):
    code = "invalid_referral"


class DuplicatePlan(Conflict):
    code = "duplicate_referral_plan"


class CodeNotActive(Conflict):
    code = "referral_code_not_active"


class AlreadyReferred(Conflict):
    code = "already_referred"
