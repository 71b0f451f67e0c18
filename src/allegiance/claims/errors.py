"""Errors of partner sales claims."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed


class ClaimNotFound(NotFound):
    code = "claim_not_found"


class InvalidClaim(ValidationFailed):
    code = "invalid_claim"


class OutsideWindow(ValidationFailed):
    code = "claim_outside_window"


class ClaimNotPending(Conflict):
    code = "claim_not_pending"


class SameReviewer(Forbidden):
    code = "same_reviewer"
