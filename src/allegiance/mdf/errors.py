"""Errors of co-marketing funds."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class FundNotFound(NotFound):
    code = "fund_not_found"


class MdfClaimNotFound(NotFound):
    code = "mdf_claim_not_found"


class InvalidFund(ValidationFailed):
    code = "invalid_fund"


class InvalidMdfClaim(ValidationFailed):
    code = "invalid_mdf_claim"


class DuplicateFund(Conflict):
    code = "duplicate_fund"


class FundExhausted(Conflict):
    code = "fund_exhausted"


class FundClosed(Conflict):
    code = "fund_closed"


class MdfClaimState(Conflict):
    code = "mdf_claim_state"
